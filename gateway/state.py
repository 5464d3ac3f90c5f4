"""What the running gateway holds: settings, the shared engines once loaded, and live connections."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from pipeline import EngineConfig, Engines

from .admission import LatencyGate
from .limits import PerClient
from .metrics import GatewayMetrics
from .settings import Settings

log = logging.getLogger("gateway")


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        asr_model=settings.model, asr_engine=settings.asr_engine, device=settings.device,
        compute_type=settings.compute_type, cpu_threads=settings.cpu_threads, decoder_threads=settings.decoder_threads,
        asr_lanes=settings.asr_lanes,
        translators=settings.translators,
        max_batch=settings.max_batch, batch_wait_ms=settings.batch_wait_ms,
    )


@dataclass
class GatewayState:
    settings: Settings
    engines: Engines | None = None
    load_error: BaseException | None = None
    connections: set[asyncio.Task] = field(default_factory=set)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    live_sessions: dict = field(default_factory=dict)  # StreamConnection → Session, while streaming
    draining: bool = False  # set on SIGTERM: no new sessions
    per_client: PerClient = field(init=False)
    admission: LatencyGate = field(init=False)

    def __post_init__(self) -> None:
        self.per_client = PerClient(self.settings.max_connections_per_client)
        self.admission = LatencyGate(self.settings.admission_latency_s)
        self.metrics.sessions_active.set_function(lambda: self.sessions_active)
        if self.engines is not None:
            self._engines_ready(self.engines)

    @property
    def sessions_active(self) -> int:
        return len(self.live_sessions)

    def refusal(self) -> str | None:
        """Why a new session must wait now (the session limit, or late finals), or None to admit it."""
        limit = self.settings.session_limit
        if self.sessions_active >= limit:
            return f"the server is at its limit of {limit} sessions; try again later"
        return self.admission.refusal(self.sessions_active)

    def session_ended(self, connection: object) -> None:
        """A connection's session is over; with the last one, the latencies it caused no longer apply."""
        self.live_sessions.pop(connection, None)
        if not self.live_sessions:
            self.admission.clear()

    def _engines_ready(self, engines: Engines) -> None:
        self.engines = engines
        self.metrics.watch_workers({"asr": engines.asr_worker, "mt": engines.mt_worker})

    async def load_engines(self) -> None:
        """Load models off the event loop; /readyz turns ready when done."""
        try:
            self._engines_ready(await asyncio.to_thread(Engines.load, engine_config(self.settings)))
            log.info("models loaded: %s", self.engines.describe())
        except Exception as exc:  # reported by /readyz and to every session
            self.load_error = exc
            log.exception("loading models failed")

    def track(self, task: asyncio.Task) -> None:
        """Keep a connection's task until it ends."""
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)
