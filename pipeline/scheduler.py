"""Model workers: the only owners of a model's compute.

Threads: each ``ModelWorker`` runs one OS thread that executes calls one at a time, highest priority
first (finals before partials), FIFO within a priority. ``run`` is awaited from the event loop; the
result or exception comes back through an asyncio future set with ``call_soon_threadsafe``. Sessions
keep at most one request in flight each, so FIFO order is also a fair round-robin across sessions. The
number of waiting requests is bounded: ``run`` waits for a free slot instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

T = TypeVar("T")


class Priority(IntEnum):
    FINAL = 0
    PARTIAL = 1


@dataclass(order=True)
class _Request:
    priority: int
    seq: int
    fn: Callable[[], Any] = field(compare=False)
    future: asyncio.Future = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)


_STOP = _Request(priority=-1, seq=-1, fn=lambda: None, future=None, loop=None)  # type: ignore[arg-type]


class ModelWorker:
    """One thread serving calls into one shared model."""

    def __init__(self, name: str, max_pending: int = 256) -> None:
        self.name = name
        self._queue: queue.PriorityQueue[_Request] = queue.PriorityQueue()
        self._async_slots: asyncio.Semaphore | None = None
        self._max_pending = max_pending
        self._seq = itertools.count()
        self.busy_seconds = 0.0
        self.restarts = 0
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._serve, name=f"worker-{self.name}", daemon=True)
        thread.start()
        return thread

    @property
    def pending(self) -> int:
        """Requests waiting or running."""
        return self._queue.qsize()

    async def run(self, fn: Callable[..., T], *args: Any, priority: Priority = Priority.PARTIAL) -> T:
        """Run ``fn(*args)`` on the worker thread; cancelling the await drops a request not yet started."""
        if self._async_slots is None:
            self._async_slots = asyncio.Semaphore(self._max_pending)
        async with self._async_slots:
            if not self._thread.is_alive():  # a dead worker is replaced, and the queue goes on
                self.restarts += 1
                self._thread = self._start()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[T] = loop.create_future()
            self._queue.put(_Request(int(priority), next(self._seq), lambda: fn(*args), future, loop))
            return await future

    def close(self) -> None:
        """Stop the thread after the requests already queued."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _serve(self) -> None:
        while True:
            request = self._queue.get()
            if request is _STOP:
                return
            if request.future.cancelled():
                continue
            started = time.perf_counter()
            try:
                result = request.fn()
            except BaseException as exc:  # delivered to the awaiting session
                request.loop.call_soon_threadsafe(_set_exception, request.future, exc)
            else:
                request.loop.call_soon_threadsafe(_set_result, request.future, result)
            finally:
                self.busy_seconds += time.perf_counter() - started


def _set_result(future: asyncio.Future, result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
