"""Rows of a dynamic length: the batcher coalesces only submissions of one shape, in order, and
SIS searches over inputs of different lengths share a model's worker without mixing their rows."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from sisguard.server.batching.batcher import Batcher
from sisguard.sis import SISParams, element_groups, find_sis


class Recorder:
    def __init__(self, queued: int = 0) -> None:
        self.batches: list[tuple[int, int]] = []  # (callers, rows)
        self.queued = asyncio.Event()
        self._want = queued

    def batch_done(self, model: str, rows: int, queue_wait: list[float], compute_seconds: float) -> None:
        self.batches.append((len(queue_wait), rows))

    def queue_changed(self, model: str, rows: int) -> None:
        if self._want and rows >= self._want:
            self.queued.set()


async def test_only_rows_of_one_shape_share_a_batch() -> None:
    gate = threading.Event()
    started = threading.Event()
    shapes: list[tuple[int, ...]] = []

    def run(rows: np.ndarray) -> np.ndarray:
        shapes.append(rows.shape)
        if len(shapes) == 1:  # hold the first batch so that the others queue up behind it
            started.set()
            gate.wait(30)
        return rows.sum(axis=1, keepdims=True).astype(np.float32)

    rec = Recorder(queued=10)
    b = Batcher("m", run, max_batch_size=16, observer=rec)
    b.start()
    first = asyncio.ensure_future(b.submit(np.ones((1, 3))))
    await asyncio.to_thread(started.wait, 30)
    lengths = [4, 8, 4, 8, 4]
    waiting = [asyncio.ensure_future(b.submit(np.full((2, n), float(i)))) for i, n in enumerate(lengths)]
    await rec.queued.wait()  # all five submissions (10 rows) are queued behind the held batch
    gate.set()
    outs = await asyncio.gather(first, *waiting)
    await b.close()
    assert outs[0].tolist() == [[3.0]]
    for i, (n, out) in enumerate(zip(lengths, outs[1:], strict=True)):
        assert out.ravel().tolist() == [float(i) * n] * 2
    # the held batch, then all length-4 rows together, then all length-8 rows together
    assert shapes == [(1, 3), (6, 4), (4, 8)]
    assert rec.batches[1:] == [(3, 6), (2, 4)]


async def test_searches_over_different_lengths_share_a_worker() -> None:
    seen: list[tuple[int, ...]] = []

    def run(rows: np.ndarray) -> np.ndarray:
        seen.append(rows.shape)
        return np.linalg.norm(rows, axis=1, keepdims=True).astype(np.float32)

    b = Batcher("m", run, max_batch_size=64)
    b.start()
    inputs = [np.arange(1, n + 1, dtype=np.float32) for n in (5, 9, 5, 12)]

    async def explain(x: np.ndarray) -> tuple[int, ...]:
        fn = b.score_fn(lambda raw: raw[:, 0].astype(np.float64))
        result = await find_sis(x, np.zeros_like(x), element_groups(x.shape), fn, SISParams(threshold=float(x.max())))
        return result.collection[0].features

    results = await asyncio.gather(*(explain(x) for x in inputs))
    await b.close()
    # each SIS is the largest element alone (its norm reaches the threshold)
    assert [r for r in results] == [(4,), (8,), (4,), (11,)]
    assert all(len(s) == 2 and s[1] in (5, 9, 12) for s in seen)
