"""Run the app under uvicorn with the gateway's TLS and limits."""

from __future__ import annotations

import asyncio
import logging
import re

import uvicorn

from pipeline import Engines

from .app import create_app
from .protocol import CloseCode, ErrorCode
from .memory import limit_malloc_arenas
from .settings import Settings
from .state import GatewayState
from .tls import ensure_self_signed, trust_instructions

log = logging.getLogger("gateway")


class RedactTokens(logging.Filter):
    """Keep API tokens out of logs (uvicorn logs WebSocket paths with their query string)."""

    _TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {k: self._redact(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(self._redact(a) for a in record.args)
        record.msg = self._redact(record.msg)
        return True

    def _redact(self, value: object) -> object:
        return self._TOKEN.sub(r"\1<redacted>", value) if isinstance(value, str) else value


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
        # A client's pong waits in TCP behind the audio it sent ahead (up to the burst), which the gateway
        # reads only as fast as the session takes it: a 20 s timeout closed healthy connections (1011)
        # of clients that sent a file at once to a busy server. A peer that stays silent as long as an
        # idle session may last is gone.
        ws_ping_timeout=max(20.0, settings.idle_timeout_s),
        timeout_graceful_shutdown=10,
        **tls,
    )


class GatewayServer(uvicorn.Server):
    """uvicorn's server with a drain before shutdown: on SIGTERM/SIGINT, sessions finish their current
    segment and get their finals and ``end`` (closed with 1001); whatever is left after the grace period
    gets a ``going_away`` error and 1001. Then uvicorn's own shutdown runs and the process exits 0. A second
    signal goes to uvicorn's own handling (immediate shutdown)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame) -> None:
        state = getattr(getattr(self.config.app, "state", None), "gateway", None)
        if self._draining or self._loop is None or state is None:
            return super().handle_exit(sig, frame)
        self._draining = True
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self._drain(state, sig, frame)))

    async def _drain(self, state: GatewayState, sig: int, frame) -> None:
        state.draining = True
        grace = state.settings.shutdown_grace_s
        log.info("draining %d sessions (grace %.0f s)", len(state.live_sessions), grace)
        for connection, session in list(state.live_sessions.items()):
            await connection.finish(session, ErrorCode.GOING_AWAY,
                                    "the server is shutting down: your current segment is being finished")
        deadline = self._loop.time() + grace
        while state.live_sessions and self._loop.time() < deadline:
            await asyncio.sleep(0.1)
        for connection in list(state.live_sessions):
            connection.fail(ErrorCode.GOING_AWAY, "the server is shutting down", CloseCode.GOING_AWAY)
        await asyncio.sleep(0.2)  # let the writers send those
        # A drained shutdown is a normal exit (status 0): uvicorn would re-raise the signal instead.
        self.should_exit = True


def serve(settings: Settings) -> None:
    """Serve until interrupted."""
    limit_malloc_arenas()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn_config(settings)
    for name in ("uvicorn.error", "uvicorn.access", "gateway"):
        logging.getLogger(name).addFilter(RedactTokens())
    log.info("serving %s://%s:%d/ (WebSocket /v1/stream)", settings.scheme, settings.host, settings.port)
    GatewayServer(config).run()
