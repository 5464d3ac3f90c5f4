"""Model workers: priorities, failures delivered to the caller, cancellation, restart."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pipeline.scheduler import ModelWorker, Priority


async def test_finals_run_before_waiting_partials_and_fifo_within_a_priority():
    worker = ModelWorker("test")
    gate = threading.Event()
    order: list[str] = []
    blocker = asyncio.create_task(worker.run(gate.wait))
    await asyncio.sleep(0.05)  # the worker is busy with the blocker
    tasks = [asyncio.create_task(worker.run(order.append, name, priority=p)) for name, p in
             [("p1", Priority.PARTIAL), ("f1", Priority.FINAL), ("p2", Priority.PARTIAL), ("f2", Priority.FINAL)]]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(blocker, *tasks)
    assert order == ["f1", "f2", "p1", "p2"]
    worker.close()


async def test_an_exception_reaches_only_its_caller():
    worker = ModelWorker("test")

    def boom() -> None:
        raise ValueError("model failed")

    with pytest.raises(ValueError, match="model failed"):
        await worker.run(boom)
    assert await worker.run(lambda: 42) == 42
    worker.close()


async def test_a_dead_worker_thread_is_restarted():
    worker = ModelWorker("test")
    worker.close()  # the thread ends, as if it had died
    assert await worker.run(lambda: "still serving") == "still serving"
    assert worker.restarts == 1
    worker.close()
