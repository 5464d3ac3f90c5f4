"""Per-connection limits: how fast audio may arrive, and connections per client address."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class AudioRate:
    """Token bucket in seconds of audio: ``rate`` × real time on average, ``burst_s`` ahead at most."""

    rate: float
    burst_s: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst_s
        self._last = self.clock()

    def take(self, seconds: float) -> bool:
        """Account for ``seconds`` of audio; False (and nothing taken) when it arrives too fast."""
        now = self.clock()
        self._tokens = min(self.burst_s, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if seconds > self._tokens:
            return False
        self._tokens -= seconds
        return True


@dataclass
class PerClient:
    """Open connections per client address."""

    limit: int
    _open: Counter = field(default_factory=Counter)

    def acquire(self, client: str) -> bool:
        if self._open[client] >= self.limit:
            return False
        self._open[client] += 1
        return True

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]
