"""The per-model step scheduler (ModelWorker) with a real ONNX Runtime session.

Every search it runs must end exactly as find_sis driven one chunk at a time through a plain async
score function; on top of that it coalesces the steps of concurrent searches into shared runs,
serves client searches before background ones, and keeps one search's failure or cancellation
from touching the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sisguard.server.batching.batcher import Batcher
from sisguard.server.batching.steps import BACKGROUND, FOREGROUND, ModelWorker
from sisguard.server.errors import DeadlineExceeded, Unavailable
from sisguard.sis import ProgressEvent, SISParams, SISResult, SISSearch, find_sis, pixel_groups

DIGITS = Path(__file__).resolve().parents[3] / "server" / "models" / "digits"
SAMPLES = np.load(DIGITS / "samples.npz")["x"]
GROUPS = pixel_groups(SAMPLES.shape[1:])
BASE = np.zeros(SAMPLES.shape[1:], np.float32)
BAD = 123.0  # an input holding this value makes the model fail


class Model:
    """The bundled digits model in ONNX Runtime; records each run's rows, fails on BAD rows, and
    can hold its first run until released (to queue work behind a busy model)."""

    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(DIGITS / "dense.onnx"), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        self.runs: list[int] = []
        self.log: list[tuple[str, int]] = []  # ("run", rows) and (search tag, rows) in worker order

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.runs.append(rows.shape[0])
        self.log.append(("run", rows.shape[0]))
        if (rows == BAD).any():
            raise RuntimeError("the model cannot run this input")
        return self.session.run(None, {self.name: rows})[0]


def target_prob(target: int):
    def transform(raw: np.ndarray) -> np.ndarray:
        z = raw.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[:, target]

    return transform


def tagged(model: Model, tag: str, target: int):
    inner = target_prob(target)

    def transform(raw: np.ndarray) -> np.ndarray:
        model.log.append((tag, raw.shape[0]))
        return inner(raw)

    return transform


def case(i: int, max_sis: int = 1, batch_k: int = 1) -> tuple[np.ndarray, int, SISParams]:
    x = SAMPLES[i]
    raw = Model()(x[None])
    target = int(np.argmax(raw))
    tau = 0.9 * float(target_prob(target)(raw)[0])
    return x, target, SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k, chunk_size=16)


async def expected(model: Model, x: np.ndarray, target: int, params: SISParams) -> SISResult:
    transform = target_prob(target)

    async def score(rows: np.ndarray) -> np.ndarray:
        return transform(model(rows))

    return await find_sis(x, BASE, GROUPS, score, params)


def same(a: SISResult, b: SISResult) -> bool:
    def key(r: SISResult) -> tuple[object, ...]:
        return (r.status, r.collection, r.backselect, r.evaluations)

    return key(a) == key(b)


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
async def worker(model: Model):
    w = ModelWorker("digits", model, max_rows=64)
    yield w
    w.shutdown(wait=True)


def hold(worker: ModelWorker) -> threading.Event:
    """Occupy the worker thread until the returned event is set."""
    release = threading.Event()
    worker.submit(release.wait, 10)
    return release


async def registered(worker: ModelWorker, n: int) -> None:
    for _ in range(1000):
        if worker.searches == n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{worker.searches} searches registered, expected {n}")


@pytest.mark.parametrize(("max_sis", "batch_k"), [(1, 1), (2, 1), (1, 3), (3, 2)])
async def test_concurrent_searches_share_runs_and_match_find_sis(
    model: Model, worker: ModelWorker, max_sis: int, batch_k: int
) -> None:
    cases = [case(i, max_sis, batch_k) for i in range(4)]
    release = hold(worker)
    searches = [SISSearch(x, BASE, GROUPS, p) for x, _, p in cases]
    tasks = [
        asyncio.ensure_future(worker.search(s, target_prob(t)))
        for s, (_, t, _) in zip(searches, cases, strict=True)
    ]
    await registered(worker, 4)
    model.runs.clear()
    release.set()
    await asyncio.gather(*tasks)
    assert model.runs[0] == 4 * 2  # the first run holds f(x) and f(baseline) of all four searches
    assert max(model.runs) <= 64
    total = sum(s.evaluations for s in searches)
    assert sum(model.runs) == total
    steps = sum(len(t.order) for s in searches for t in s.result().backselect)
    assert len(model.runs) < steps  # coalesced: fewer runs than the searches' steps
    for s, (x, t, p) in zip(searches, cases, strict=True):
        assert same(s.result(), await expected(model, x, t, p))


async def test_background_waits_for_foreground(model: Model, worker: ModelWorker) -> None:
    release = hold(worker)
    tasks = []
    for tag, i, prio in (("bg", 0, BACKGROUND), ("fg", 1, FOREGROUND), ("bg", 2, BACKGROUND)):
        x, t, p = case(i)
        search = SISSearch(x, BASE, GROUPS, p)
        tasks.append(asyncio.ensure_future(worker.search(search, tagged(model, tag, t), priority=prio)))
    await registered(worker, 3)
    release.set()
    await asyncio.gather(*tasks)
    tags = [tag for tag, _ in model.log if tag != "run"]
    first_bg = tags.index("bg")
    assert "fg" in tags and "fg" not in tags[first_bg:]


async def test_progress_events_arrive_in_order_before_completion(model: Model, worker: ModelWorker) -> None:
    x, t, p = case(3, max_sis=2)
    want: list[ProgressEvent] = []
    expect = SISSearch(x, BASE, GROUPS, p, want.append)
    transform = target_prob(t)
    while (req := expect.request) is not None:
        expect.feed(transform(model(req.rows())))
    seen: list[tuple[ProgressEvent, int]] = []
    loop_thread = threading.get_ident()

    def progress(e: ProgressEvent) -> None:
        assert threading.get_ident() == loop_thread  # delivered on the event loop, not the worker
        seen.append((e, len(seen)))

    search = SISSearch(x, BASE, GROUPS, p, progress)
    await worker.search(search, transform)
    assert [e for e, _ in seen] == want
    assert search.progress is progress  # the relay is removed again


async def test_cancelling_one_search_leaves_the_others_running(model: Model, worker: ModelWorker) -> None:
    cases = [case(i) for i in range(3)]
    steps_seen = asyncio.Event()

    def progress(e: ProgressEvent) -> None:
        if e.step == 3:
            steps_seen.set()

    searches = [SISSearch(x, BASE, GROUPS, p, progress if i == 1 else None) for i, (x, _, p) in enumerate(cases)]
    tasks = [
        asyncio.ensure_future(worker.search(s, target_prob(t))) for s, (_, t, _) in zip(searches, cases, strict=True)
    ]
    await steps_seen.wait()
    tasks[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    await asyncio.gather(tasks[0], tasks[2])
    for i in (0, 2):
        x, t, p = cases[i]
        assert same(searches[i].result(), await expected(model, x, t, p))
    assert not searches[1].done  # stopped where it was cancelled
    assert worker.searches == 0


async def test_a_failing_run_fails_only_the_affected_search(model: Model, worker: ModelWorker) -> None:
    cases = [case(i) for i in range(3)]
    bad = cases[1][0].copy()
    bad.flat[5] = BAD
    cases[1] = (bad, cases[1][1], cases[1][2])
    release = hold(worker)
    searches = [SISSearch(x, BASE, GROUPS, p) for x, _, p in cases]
    tasks = [
        asyncio.ensure_future(worker.search(s, target_prob(t))) for s, (_, t, _) in zip(searches, cases, strict=True)
    ]
    await registered(worker, 3)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    for i in (0, 2):
        x, t, p = cases[i]
        assert results[i] is None and same(searches[i].result(), await expected(model, x, t, p))


async def test_deadline_and_shutdown(model: Model, worker: ModelWorker) -> None:
    x, t, p = case(0)
    with pytest.raises(DeadlineExceeded):
        await worker.search(SISSearch(x, BASE, GROUPS, p), target_prob(t), deadline=time.monotonic() - 1)
    release = hold(worker)
    task = asyncio.ensure_future(worker.search(SISSearch(x, BASE, GROUPS, p), target_prob(t)))
    await registered(worker, 1)
    worker.shutdown(wait=False)
    with pytest.raises(Unavailable):
        await task
    release.set()
    with pytest.raises(Unavailable):
        await worker.search(SISSearch(x, BASE, GROUPS, p), target_prob(t))


async def test_batcher_score_fn_runs_searches_on_the_model_thread(model: Model) -> None:
    b = Batcher("digits", model, max_batch_size=32)
    b.start()
    try:
        x, t, p = case(2, max_sis=2)
        fn = b.score_fn(target_prob(t))
        got = await find_sis(x, BASE, GROUPS, fn, p)
        assert same(got, await expected(model, x, t, p))
        single = await fn(x[None])  # plain rows still go through the batcher
        np.testing.assert_allclose(single, [got.full_score])
    finally:
        await b.close()
    with pytest.raises(Unavailable):
        await find_sis(x, BASE, GROUPS, fn, p)


async def test_steps_longer_than_a_run_share_the_row_buffer_and_match_find_sis(model: Model) -> None:
    """``max_rows`` 7: every step spans several runs, searches take turns in the worker's one row
    buffer (and one run's rows end where the next search's begin), and each ends as find_sis."""
    w = ModelWorker("digits", model, max_rows=7)
    try:
        cases = [case(i, max_sis=2) for i in range(3)]
        searches = [SISSearch(x, BASE, GROUPS, p) for x, _, p in cases]
        await asyncio.gather(*(w.search(s, target_prob(t)) for s, (_, t, _) in zip(searches, cases, strict=True)))
        assert max(model.runs) <= 7
        for s, (x, t, p) in zip(searches, cases, strict=True):
            assert same(s.result(), await expected(model, x, t, p))
    finally:
        w.shutdown(wait=True)
