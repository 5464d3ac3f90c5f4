"""Model workers: the only owners of a model's compute, batching requests across sessions.

Each ``ModelWorker`` runs one OS thread per lane (one by default). Requests carry a *batch function*
(``items -> results``, one result per item, in order) and an item; a thread takes the most urgent
request (finals before partials, FIFO within a priority), then gathers waiting requests with the same
batch function and priority, up to ``max_batch``, waiting at most ``max_wait_s`` for more to arrive,
and runs them as one call. Results go back to each request's event loop through
``call_soon_threadsafe``. Sessions keep at most one request in flight each, so FIFO order is also a
fair round-robin across sessions. The number of waiting requests is bounded: ``submit`` waits for a
free slot instead of queueing without limit.

``max_batch=1`` runs requests one at a time; on a GPU, batches of sessions share one encoder and
decoder pass.

``lanes`` threads may serve one queue, for a model that runs calls side by side (CTranslate2 with a
one-thread decoder per lane on a small CPU). Lane 0 takes finals first, lane 1 partials first, lane 2
finals again, and so on; each takes the other kind when none of its own waits, so no lane idles while
work waits, and a final waits for a running partial only when every lane is busy.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[Any]], Sequence[Any]]


class Priority(IntEnum):
    FINAL = 0
    PARTIAL = 1


@dataclass(order=True)
class _Request:
    priority: int
    seq: int
    batch_fn: BatchFn = field(compare=False)
    item: Any = field(compare=False)
    future: asyncio.Future = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)


_Outcome = tuple[_Request, Any, BaseException | None]  # a request, its result or its exception


def _call_each(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    return [call() for call in calls]


class ModelWorker:
    """One thread per lane serving (batched) calls into one shared model."""

    def __init__(self, name: str, max_pending: int = 256, max_batch: int = 1, max_wait_s: float = 0.0,
                 after_batch: Callable[[], None] | None = None, lanes: int = 1) -> None:
        """``after_batch`` runs on the worker thread after every batch (e.g. to release memory); ``lanes``
        threads serve the queue (the model must allow that many calls at once)."""
        self.name = name
        self._after_batch = after_batch
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self._waiting: list[_Request] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._async_slots: asyncio.Semaphore | None = None
        self._max_pending = max_pending
        self._seq = itertools.count()
        self.busy_seconds = 0.0  # summed over lanes
        self.running = 0  # batches running now, one per busy lane
        self.peak_running = 0
        self.restarts = 0
        self.batch_sizes: Counter[int] = Counter()  # batch size -> batches run
        self._threads = [self._start(lane) for lane in range(max(1, lanes))]

    @property
    def lanes(self) -> int:
        """Threads serving the queue."""
        return len(self._threads)

    def _start(self, lane: int) -> threading.Thread:
        name = f"worker-{self.name}" + (f"-{lane}" if lane else "")
        thread = threading.Thread(target=self._serve, args=(lane,), name=name, daemon=True)
        thread.start()
        return thread

    @property
    def pending(self) -> int:
        """Requests waiting to run."""
        return len(self._waiting)

    async def submit(self, batch_fn: Callable[[Sequence[T]], Sequence[R]], item: T,
                     priority: Priority = Priority.PARTIAL) -> R:
        """Run ``item`` through ``batch_fn`` on the worker thread, batched with other requests for the same
        function; cancelling the await drops a request not yet started."""
        if self._async_slots is None:
            self._async_slots = asyncio.Semaphore(self._max_pending)
        async with self._async_slots:
            for lane, thread in enumerate(self._threads):
                if not thread.is_alive():  # a dead lane is replaced, and the queue goes on
                    self.restarts += 1
                    self._stopping = False
                    self._threads[lane] = self._start(lane)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[R] = loop.create_future()
            with self._ready:
                self._waiting.append(_Request(int(priority), next(self._seq), batch_fn, item, future, loop))
                self._ready.notify()
            return await future

    async def run(self, fn: Callable[..., T], *args: Any, priority: Priority = Priority.PARTIAL) -> T:
        """Run ``fn(*args)`` on the worker thread (not batched with anything)."""
        return await self.submit(_call_each, lambda: fn(*args), priority)

    def close(self) -> None:
        """Stop the threads after the requests already queued."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take_batch(self, lane: int) -> list[_Request] | None:
        preferred = lane % len(Priority)
        with self._ready:
            while not self._waiting:
                if self._stopping:
                    return None
                self._ready.wait()
            first = min(self._waiting, key=lambda r: (r.priority != preferred, r.priority, r.seq))
            batch_fn, priority = first.batch_fn, first.priority
            room = 1 if batch_fn is _call_each else self.max_batch
            batch = self._gather(batch_fn, priority, room)
            deadline = time.monotonic() + self.max_wait_s
            while batch and len(batch) < room and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
                batch += self._gather(batch_fn, priority, room - len(batch))
            return batch

    def _gather(self, batch_fn: BatchFn, priority: int, room: int) -> list[_Request]:
        """Remove from the queue up to ``room`` live requests for ``batch_fn`` at ``priority``, oldest
        first (and drop every cancelled request). A batch never mixes priorities: a final batched with
        partials would wait for their decodes."""
        self._waiting = [r for r in self._waiting if not r.future.cancelled()]
        taken = sorted(r for r in self._waiting if r.batch_fn == batch_fn and r.priority == priority)[:room]
        for request in taken:
            self._waiting.remove(request)
        return taken

    def _serve(self, lane: int) -> None:
        while (batch := self._take_batch(lane)) is not None:
            if not batch:
                continue
            with self._ready:
                self.batch_sizes[len(batch)] += 1
                self.running += 1
                self.peak_running = max(self.peak_running, self.running)
            started = time.perf_counter()
            outcomes: list[_Outcome] = []
            try:
                outcomes = self._run_batch(batch)
                if self._after_batch is not None:
                    self._after_batch()
            finally:
                # The counters settle before any result is delivered, so whoever receives one sees its
                # batch counted and its lane free again.
                with self._ready:
                    self.running -= 1
                    self.busy_seconds += time.perf_counter() - started
                for request, result, exception in outcomes:
                    request.loop.call_soon_threadsafe(_settle, request.future, result, exception)

    def _run_batch(self, batch: list[_Request]) -> list[_Outcome]:
        try:
            results = batch[0].batch_fn([request.item for request in batch])
            return [(request, result, None) for request, result in zip(batch, results, strict=True)]
        except BaseException as exc:  # also a batch function that returned too few or too many results
            if len(batch) == 1:
                return [(batch[0], None, exc)]
            # One bad item must not fail the others: run each alone to find out whose it is.
            return [outcome for request in batch for outcome in self._run_batch([request])]


def _settle(future: asyncio.Future, result: Any, exception: BaseException | None) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
