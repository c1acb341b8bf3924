"""The dynamic batcher through its public interface."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from sisguard.server.batching.batcher import BACKGROUND, Batcher
from sisguard.server.errors import DeadlineExceeded, ResourceExhausted, Unavailable


class Recorder:
    """A run function that records batch sizes and can block or fail on demand."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[np.ndarray] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a run has started (the model is busy)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.entered.set()
        self.gate.wait(5)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(x.copy())
        if (x < 0).any():
            raise RuntimeError("negative input")
        return x * 10


def rows(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1, 1)


async def busy(rec: Recorder) -> None:
    """Until the model runs a batch (what is submitted now queues behind it)."""
    assert await asyncio.to_thread(rec.entered.wait, 5), "the model never started"


async def queued(b: Batcher, n: int) -> None:
    """Until ``n`` rows wait in the queue (submit enqueues on the task's first step)."""
    for _ in range(1000):
        if b.queued_rows == n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{b.queued_rows} rows queued, expected {n}")


@pytest.fixture
async def make():
    made: list[Batcher] = []

    def factory(fn: Recorder, **kw: object) -> Batcher:
        b = Batcher("m", fn, **{"max_batch_size": 4, **kw})  # type: ignore[arg-type]
        b.start()
        made.append(b)
        return b

    yield factory
    for b in made:
        await b.close()


async def test_idle_model_dispatches_at_once(make) -> None:
    rec = Recorder()
    b = make(rec)
    out = await asyncio.wait_for(b.submit(rows(1, 2)), 1)
    assert out.ravel().tolist() == [10, 20]
    assert [len(x) for x in rec.batches] == [2]


async def test_submissions_arriving_during_a_run_are_coalesced(make) -> None:
    rec = Recorder()
    rec.gate.clear()  # the first batch blocks until we release it
    b = make(rec)
    first = asyncio.create_task(b.submit(rows(0)))
    await busy(rec)
    waiting = [asyncio.create_task(b.submit(rows(i))) for i in range(1, 4)]
    await queued(b, 3)
    rec.gate.set()
    results = await asyncio.gather(first, *waiting)
    assert [r.item() for r in results] == [0, 10, 20, 30]
    assert [len(x) for x in rec.batches] == [1, 3]


async def test_large_submission_is_split_and_reassembled_in_order(make) -> None:
    rec = Recorder()
    b = make(rec)
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    out = await b.submit(x)
    np.testing.assert_array_equal(out, x * 10)
    assert all(len(batch) <= 4 for batch in rec.batches)
    assert sum(len(batch) for batch in rec.batches) == 10


async def test_each_caller_gets_its_own_rows(make) -> None:
    b = make(Recorder())
    inputs = [np.full((n, 1), i, dtype=np.float32) for i, n in enumerate([1, 3, 2, 5, 1, 4])]
    outs = await asyncio.gather(*(b.submit(x) for x in inputs))
    for x, out in zip(inputs, outs, strict=True):
        np.testing.assert_array_equal(out, x * 10)


async def test_queue_full_is_resource_exhausted(make) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = make(rec, queue_capacity=5)
    blocked = asyncio.create_task(b.submit(rows(1, 2, 3)))
    await busy(rec)  # 3 rows are running: not queued any more
    waiting = asyncio.create_task(b.submit(rows(1, 2, 3, 4)))
    await queued(b, 4)
    with pytest.raises(ResourceExhausted, match="queue of model m is full"):
        await b.submit(rows(1, 2))
    rec.gate.set()
    await asyncio.gather(blocked, waiting)
    assert b.queued_rows == 0


async def test_expired_deadline_is_dropped_before_compute(make) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = make(rec)
    blocker = asyncio.create_task(b.submit(rows(1)))
    await busy(rec)
    late = asyncio.create_task(b.submit(rows(7), deadline=time.monotonic() - 1.0))  # expired while queued
    await queued(b, 1)
    rec.gate.set()
    await blocker
    with pytest.raises(DeadlineExceeded):
        await late
    assert all(7 not in batch for batch in rec.batches)


async def test_failed_batch_fails_only_its_own_requests(make) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = make(rec, max_batch_size=2)
    blocker = asyncio.create_task(b.submit(rows(0)))
    await busy(rec)
    bad = asyncio.create_task(b.submit(rows(-1, 1)))  # one full batch of its own
    good = asyncio.create_task(b.submit(rows(2, 3)))  # the next batch
    await queued(b, 4)
    rec.gate.set()
    await blocker
    with pytest.raises(RuntimeError, match="negative"):
        await bad
    assert (await good).ravel().tolist() == [20, 30]
    assert (await b.submit(rows(4))).item() == 40  # the worker recovered


async def test_a_caller_s_bad_rows_fail_only_that_caller_when_batched_with_others(make) -> None:
    """Coalesced submissions of several callers: a failing batch is run again caller by caller."""
    rec = Recorder()
    rec.gate.clear()
    b = make(rec, max_batch_size=4)
    blocker = asyncio.create_task(b.submit(rows(0)))
    await busy(rec)  # the model is busy: what comes now is coalesced
    bad = asyncio.create_task(b.submit(rows(-1)))
    good = asyncio.create_task(b.submit(rows(2, 3)))
    await queued(b, 3)
    rec.gate.set()
    await blocker
    with pytest.raises(RuntimeError, match="negative"):
        await bad
    assert (await good).ravel().tolist() == [20, 30]
    assert [len(x) for x in rec.batches] == [1, 3, 1, 2]  # the coalesced batch, then one run per caller


async def test_cancelled_caller_frees_its_slots(make) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = make(rec, queue_capacity=4)
    blocker = asyncio.create_task(b.submit(rows(1)))
    await busy(rec)
    victim = asyncio.create_task(b.submit(rows(5, 5, 5)))
    await queued(b, 3)
    victim.cancel()
    rec.gate.set()
    await blocker
    assert (await b.submit(rows(2))).item() == 20  # the worker has passed the cancelled rows
    assert all(5 not in batch for batch in rec.batches)
    assert b.queued_rows == 0


async def test_background_waits_for_foreground(make) -> None:
    rec = Recorder()
    rec.gate.clear()
    b = make(rec)
    blocker = asyncio.create_task(b.submit(rows(0)))
    await busy(rec)
    bg = asyncio.create_task(b.submit(rows(100), priority=BACKGROUND))
    fg = asyncio.create_task(b.submit(rows(1)))
    await queued(b, 2)
    rec.gate.set()
    await asyncio.gather(blocker, bg, fg)
    order = [batch.ravel().tolist() for batch in rec.batches]
    assert order == [[0], [1], [100]]


async def test_queue_delay_gathers_rows_of_an_idle_model(make) -> None:
    rec = Recorder()
    b = make(rec, max_batch_size=3, max_queue_delay=5.0)  # a full batch ends the wait at once
    first = asyncio.create_task(b.submit(rows(0)))
    await queued(b, 1)
    for _ in range(20):  # the worker has had its chances to run it alone, and waits instead
        await asyncio.sleep(0)
    assert b.queued_rows == 1 and not rec.batches
    rest = [asyncio.create_task(b.submit(rows(i))) for i in (1, 2)]
    await asyncio.gather(first, *rest)
    assert [len(x) for x in rec.batches] == [3]


async def test_closed_batcher_is_unavailable() -> None:
    b = Batcher("m", Recorder(), max_batch_size=2)
    b.start()
    await b.close()
    with pytest.raises(Unavailable):
        await b.submit(rows(1))
