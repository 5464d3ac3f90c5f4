"""Open N WebSocket sessions to a gateway and stream a recording into each at real-time pace."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.client import BYTES_PER_SECOND, StreamOptions, StreamRun, stream_pcm

from .metrics import LatencyReport, latency_report, percentiles
from .wer import wer


@dataclass
class SessionResult:
    run: StreamRun | None
    utterances: list[dict[str, Any]]
    error: str | None = None  # refused or failed: what happened

    @property
    def refused(self) -> bool:
        return self.run is not None and any(e["code"] == "overloaded" for e in self.run.errors())


@dataclass
class LoadResult:
    sessions: list[SessionResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    def latency(self) -> LatencyReport:
        """All sessions' latencies pooled."""
        pooled = LatencyReport()
        for s in self.sessions:
            if s.run is None or s.refused:
                continue
            one = latency_report(s.run, s.utterances)
            pooled.final += one.final
            pooled.first_partial += one.first_partial
            pooled.missed_utterances += one.missed_utterances
            for target, values in one.translation.items():
                pooled.translation.setdefault(target, []).extend(values)
        return pooled

    def wer(self) -> float:
        """Mean WER of the sessions' finals against the reference of the audio each one sent."""
        values = [wer(" ".join(u["text"] for u in s.utterances), " ".join(m["text"] for m in s.run.finals()))
                  for s in self.sessions if s.run is not None and not s.refused and s.utterances]
        return sum(values) / len(values) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        latency = self.latency()
        errors = [e for s in self.sessions if s.run for e in s.run.errors() if e["code"] != "overloaded"]
        return {
            "sessions": len(self.sessions),
            "refused": sum(s.refused for s in self.sessions),
            "failed": sum(s.error is not None for s in self.sessions),
            "errors": len(errors),
            "missed_utterances": len(latency.missed_utterances),
            "wer": self.wer(),
            "latency": latency.summary(),
            "final_p90_raw": percentiles(latency.final)["p90"],
        }


def utterances_within(utterances: list[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    return [u for u in utterances if u["end"] <= seconds]


def cut_between_utterances(utterances: list[dict[str, Any]], seconds: float) -> float:
    """``seconds``, or the start of the utterance it would cut in two: a cut utterance's words are missing
    from the reference but partly recognised, and would count as errors of the system."""
    return min((u["start"] for u in utterances if u["start"] < seconds < u["end"]), default=seconds)


def recording_span(path: Path, seconds: float | None, duration_s: float) -> tuple[float, list[dict[str, Any]]]:
    """Where a recording of ``duration_s`` ends when cut to about ``seconds`` (between utterances; all of
    it for None), and the utterances up to there, from the JSON beside it (none without one)."""
    meta = path.with_suffix(".json")
    utterances = json.loads(meta.read_text())["utterances"] if meta.exists() else []
    end = min(duration_s, cut_between_utterances(utterances, seconds)) if seconds else duration_s
    return end, utterances_within(utterances, end)


async def run_load(
    url: str, audio: bytes, utterances: list[dict[str, Any]], n: int, options: StreamOptions,
    ssl_context: ssl.SSLContext | None, stagger_s: float = 3.0, seed: int = 0,
    on_message: Callable[[Any], None] | None = None,
) -> LoadResult:
    """``n`` concurrent real-time sessions, each starting at a random offset within ``stagger_s``."""
    rng = random.Random(seed)
    seconds = len(audio) / BYTES_PER_SECOND
    expected = utterances_within(utterances, seconds)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(delay: float) -> SessionResult:
        await asyncio.sleep(delay)
        try:
            run = await stream_pcm(url, audio, options, ssl_context, on_message)
        except (OSError, asyncio.TimeoutError, Exception) as exc:  # a refused/failed session is a result
            return SessionResult(None, expected, f"{type(exc).__name__}: {exc}")
        return SessionResult(run, expected)

    results = await asyncio.gather(*(one(rng.uniform(0, stagger_s)) for _ in range(n)))
    return LoadResult(list(results), loop.time() - started)
