"""The Starlette application: the page, health, the translation API and the streaming WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from pipeline import Engines

from .http_api import healthz, readyz, translate
from .memory import trim_memory_periodically
from .settings import Settings
from .state import GatewayState
from .stream import stream_endpoint


def create_app(settings: Settings, engines: Engines | None = None) -> Starlette:
    """Build the app. Models load in the background at startup unless ``engines`` is given (tests share one)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = GatewayState(settings, engines=engines)
        app.state.gateway = state
        loader = None if engines is not None else asyncio.create_task(state.load_engines())
        trimmer = asyncio.create_task(trim_memory_periodically())
        try:
            yield
        finally:
            trimmer.cancel()
            if loader is not None:
                loader.cancel()
                await asyncio.gather(loader, return_exceptions=True)
            for task in list(state.connections):
                task.cancel()
            await asyncio.gather(*state.connections, return_exceptions=True)
            if engines is None and state.engines is not None:
                state.engines.close()

    async def metrics(request):
        return await request.app.state.gateway.metrics.endpoint(request)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/readyz", readyz),
        Route("/v1/translate", translate, methods=["POST"]),
        WebSocketRoute("/v1/stream", stream_endpoint),
        Mount("/", StaticFiles(directory=settings.static_dir, html=True), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
