"""Admission by measured latency: refuse new sessions while the sessions already running get late finals.

``--max-sessions`` is a fixed guess of capacity, measured on one machine; the same model on a slower CPU
(or a busier GPU) serves fewer speakers. The gate watches what users feel, the delay from the end of an
utterance to its final transcript, over the last ``window_s`` seconds, and closes while its p90 is over
the limit, so the speakers already connected keep their latency instead of everyone falling behind.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LatencyGate:
    """Recent final latencies, and whether they leave room for one more session."""

    limit_s: float  # p90 above which new sessions are refused; 0 turns the gate off
    window_s: float = 30.0
    min_samples: int = 2  # fewer finals than this in the window say nothing yet
    clock: Callable[[], float] = time.monotonic
    max_samples: int = 1024  # the newest ones, however busy the window
    _samples: deque[tuple[float, float]] = field(init=False)  # (when, latency)

    def __post_init__(self) -> None:
        self._samples = deque(maxlen=self.max_samples)

    def record(self, latency_s: float) -> None:
        """One final transcript arrived ``latency_s`` after its utterance ended."""
        self._samples.append((self.clock(), latency_s))
        self._expire()

    def clear(self) -> None:
        """Forget everything (the load that caused it is gone)."""
        self._samples.clear()

    def p90(self) -> float | None:
        """The p90 latency over the window (nearest rank), or None with too few samples."""
        self._expire()
        if len(self._samples) < self.min_samples:
            return None
        ordered = sorted(latency for _, latency in self._samples)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]

    def refusal(self, active_sessions: int) -> str | None:
        """Why a new session must wait, or None to admit it. An idle server always admits."""
        if self.limit_s <= 0 or active_sessions == 0:
            return None
        p90 = self.p90()
        if p90 is None or p90 <= self.limit_s:
            return None
        return (f"the server is busy: finals of the {active_sessions} running session(s) arrive {p90:.1f} s "
                f"after the end of speech (p90 over the last {self.window_s:.0f} s; limit {self.limit_s:.1f} s); "
                "try again later")

    def _expire(self) -> None:
        oldest = self.clock() - self.window_s
        while self._samples and self._samples[0][0] < oldest:
            self._samples.popleft()
