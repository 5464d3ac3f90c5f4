"""Run the app under uvicorn with the gateway's TLS and limits."""

from __future__ import annotations

import logging

import uvicorn

from pipeline import Engines

from .app import create_app
from .settings import Settings
from .tls import ensure_self_signed, trust_instructions

log = logging.getLogger("gateway")


def uvicorn_config(settings: Settings, engines: Engines | None = None) -> uvicorn.Config:
    """A uvicorn Config serving the gateway over TLS (or plain HTTP with --insecure-http)."""
    tls: dict[str, str] = {}
    if not settings.insecure_http:
        if settings.cert is not None and settings.key is not None:
            cert, key = settings.cert, settings.key
        else:
            fresh = not (settings.certs_dir / "localhost.pem").exists()
            cert, key = ensure_self_signed(settings.certs_dir)
            if fresh:
                print(trust_instructions(cert), flush=True)
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    return uvicorn.Config(
        create_app(settings, engines),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=10,
        **tls,
    )


def serve(settings: Settings) -> None:
    """Serve until interrupted."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn_config(settings)
    log.info("serving %s://%s:%d/ (WebSocket /v1/stream)", settings.scheme, settings.host, settings.port)
    uvicorn.Server(config).run()
