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


@pytest.mark.parametrize("lanes", [1, 2])
async def test_a_dead_worker_thread_is_restarted(lanes):
    worker = ModelWorker("test", lanes=lanes)
    worker.close()  # the threads end, as if they had died
    assert await worker.run(lambda: "still serving") == "still serving"
    assert worker.restarts == lanes
    worker.close()


async def test_two_lanes_run_two_requests_at_once():
    """Each request waits for the other at a barrier: only side by side can both pass."""
    worker = ModelWorker("test", lanes=2)
    both = threading.Barrier(2, timeout=10)
    results = await asyncio.gather(worker.run(both.wait, priority=Priority.FINAL),
                                   worker.run(both.wait, priority=Priority.FINAL))
    assert sorted(results) == [0, 1]
    assert worker.peak_running == 2 and worker.running == 0
    worker.close()


@pytest.mark.parametrize(("freed_lane", "expected"), [(0, ["f1", "p1"]), (1, ["p1", "f1"])])
async def test_each_lane_takes_its_own_kind_first_then_the_other(freed_lane, expected):
    """Lane 0 serves finals first, lane 1 partials first; a lane with none of its own kind waiting takes
    the other kind rather than idle."""
    worker = ModelWorker("test", lanes=2)
    gates = {"worker-test": threading.Event(), "worker-test-1": threading.Event()}
    blockers = [asyncio.create_task(worker.run(lambda: gates[threading.current_thread().name].wait()))
                for _ in gates]
    await asyncio.sleep(0.05)
    assert worker.running == 2
    order: list[str] = []
    waiting = [asyncio.create_task(worker.run(order.append, name, priority=p)) for name, p in
               [("p1", Priority.PARTIAL), ("f1", Priority.FINAL)]]
    await asyncio.sleep(0.05)
    gates[f"worker-test-{freed_lane}" if freed_lane else "worker-test"].set()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert order == expected
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*blockers)
    worker.close()


async def test_waiting_requests_for_one_batch_function_and_priority_run_as_one_batch_finals_first():
    worker = ModelWorker("test", max_batch=3)
    gate = threading.Event()
    batches: list[list[str]] = []

    def double(items):
        batches.append(list(items))
        return [item * 2 for item in items]

    blocker = asyncio.create_task(worker.run(gate.wait))
    await asyncio.sleep(0.05)
    requests = [("p1", Priority.PARTIAL), ("p2", Priority.PARTIAL), ("f1", Priority.FINAL), ("p3", Priority.PARTIAL),
                ("p4", Priority.PARTIAL)]
    tasks = [asyncio.create_task(worker.submit(double, name, priority)) for name, priority in requests]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(blocker, *tasks)
    assert results[1:] == ["p1p1", "p2p2", "f1f1", "p3p3", "p4p4"]  # each caller gets its own result
    assert batches == [["f1"], ["p1", "p2", "p3"], ["p4"]]  # a final never waits for partials
    assert worker.batch_sizes == {1: 3, 3: 1}  # the blocker, the final, three partials, the last one
    worker.close()


async def test_a_batch_waits_up_to_max_wait_for_company():
    worker = ModelWorker("test", max_batch=4, max_wait_s=0.3)
    batches: list[list[int]] = []

    def record(items):
        batches.append(list(items))
        return list(items)

    first = asyncio.create_task(worker.submit(record, 1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(worker.submit(record, 2))
    assert await asyncio.gather(first, second) == [1, 2]
    assert batches == [[1, 2]]
    worker.close()


async def test_a_failing_item_fails_only_its_own_request_in_a_batch():
    worker = ModelWorker("test", max_batch=4, max_wait_s=0.2)

    def check(items):
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {list(items)}")
        return [item + 1 for item in items]

    tasks = [asyncio.create_task(worker.submit(check, item)) for item in (1, -1, 2)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 2 and results[2] == 3
    assert isinstance(results[1], ValueError)
    worker.close()


async def test_a_batch_function_that_returns_the_wrong_number_of_results_fails_its_requests():
    """A broken batch function gives each caller an error instead of leaving it waiting for ever."""
    worker = ModelWorker("test", max_batch=4, max_wait_s=0.2)
    tasks = [asyncio.create_task(worker.submit(lambda items: [], item)) for item in (1, 2)]
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
    assert all(isinstance(result, ValueError) for result in results)
    assert worker.running == 0
    assert await worker.run(lambda: "still serving") == "still serving"
    worker.close()
