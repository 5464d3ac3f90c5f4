"""Messages on their way to one client, for clients that read slower than the server writes.

A partial transcript replaces the partial of the same segment that is still waiting (only the newest
partial matters); every other message is kept, in order. When the client falls too far behind (too many
kept messages, or the oldest waiting too long) ``put`` raises ``SlowClient`` and the connection is closed:
finals are never dropped silently.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any


class SlowClient(Exception):
    """The client does not read its messages fast enough."""


class Outbox:
    def __init__(self, max_pending: int = 2000, max_delay_s: float = 60.0) -> None:
        self._items: deque[tuple[float, dict[str, Any]]] = deque()
        self._max_pending = max_pending
        self._max_delay_s = max_delay_s
        self._ready = asyncio.Event()
        self._finished = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        if self._items and now - self._items[0][0] > self._max_delay_s:
            raise SlowClient(f"the client has not read for {now - self._items[0][0]:.0f} s")
        if message.get("type") == "transcript" and not message.get("final"):
            for i, (queued_at, waiting) in enumerate(self._items):
                if waiting.get("type") == "transcript" and waiting["segment"] == message["segment"] \
                        and not waiting["final"]:
                    self._items[i] = (queued_at, message)
                    return
        if len(self._items) >= self._max_pending:
            raise SlowClient(f"{len(self._items)} messages are waiting for the client")
        self._items.append((now, message))
        self._ready.set()

    def finish(self) -> None:
        """No more messages: ``get`` returns None once the queue is empty."""
        self._finished = True
        self._ready.set()

    async def get(self) -> dict[str, Any] | None:
        while not self._items:
            if self._finished:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[1]
