"""A hook through which a session reports how long its stages take (the gateway exports them as metrics)."""

from __future__ import annotations

from typing import Protocol

STAGES = ("ingest", "asr_partial", "asr_final", "mt", "final_latency")


class Observer(Protocol):
    def observe(self, stage: str, seconds: float) -> None:
        """``stage`` is one of STAGES: ingest (decode + VAD of a chunk), asr_partial / asr_final (one decode,
        queueing included), mt (one translation), final_latency (arrival of the audio ending a segment →
        its final transcript event)."""
        ...


class NullObserver:
    def observe(self, stage: str, seconds: float) -> None:
        pass
