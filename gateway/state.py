"""What the running gateway holds: settings, the shared engines once loaded, and live connections."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from pipeline import EngineConfig, Engines

from .settings import Settings

log = logging.getLogger("gateway")


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        asr_model=settings.model, device=settings.device, compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads, translators=settings.translators,
    )


@dataclass
class GatewayState:
    settings: Settings
    engines: Engines | None = None
    load_error: BaseException | None = None
    connections: set[asyncio.Task] = field(default_factory=set)
    sessions_active: int = 0

    async def load_engines(self) -> None:
        """Load models off the event loop; /readyz turns ready when done."""
        try:
            self.engines = await asyncio.to_thread(Engines.load, engine_config(self.settings))
            log.info("models loaded: %s", self.engines.describe())
        except Exception as exc:  # reported by /readyz and to every session
            self.load_error = exc
            log.exception("loading models failed")

    def track(self, task: asyncio.Task) -> None:
        """Keep a connection's task until it ends."""
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)
