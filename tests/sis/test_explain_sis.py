"""find_sis behaviour: the public cases, edge cases, budget, chunking, cancellation, progress, modes."""

from __future__ import annotations

import asyncio
import doctest
import math
from collections.abc import Callable

import numpy as np
import pytest

import sisguard.sis.agreement as agreement_module
import sisguard.sis.backselect as sis_module
import sisguard.sis.baselines as baselines_module
import sisguard.sis.features as features_module
from sisguard.sis import (
    ProgressEvent,
    ScoreFn,
    SISParams,
    SISResult,
    backselect_cost,
    element_groups,
    find_sis,
    patch_groups,
)
from sisguard.sis.errors import BudgetExceeded, InvalidInput, ScoringError


class _QueueFull(Exception):
    """Stands for a caller's own error raised inside its score function."""


def row_score(f: Callable[[np.ndarray], float], log: list[np.ndarray] | None = None) -> ScoreFn:
    async def score(batch: np.ndarray) -> np.ndarray:
        if log is not None:
            log.append(batch)
        return np.array([f(row) for row in batch], dtype=np.float64)

    return score


def l2(z: np.ndarray) -> float:
    return float(np.linalg.norm(z.ravel()))


THETA = np.array([1.0, 2.0, 0.0, 1.0])


def theta_dot(z: np.ndarray) -> float:
    return float(z.ravel() @ THETA)


async def run(x: np.ndarray, f: Callable[[np.ndarray], float], **params: object) -> tuple[SISResult, list[np.ndarray]]:
    log: list[np.ndarray] = []
    p = SISParams(**params)  # type: ignore[arg-type]
    result = await find_sis(x, np.zeros_like(x), element_groups(x.shape), row_score(f, log), p)
    return result, log


# --------------------------------------------------------------------------- public cases


async def test_public_case_l2() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    result, _ = await run(x, l2, threshold=1.0, max_sis=3)
    assert result.status == "found"
    assert [s.features for s in result.collection] == [(2,), (3,), (1, 0)]
    np.testing.assert_allclose([s.score for s in result.collection], [10.0, 5.0, math.hypot(0.9, 0.9)])
    # the tie between features 0 and 1 is broken by the lower index
    assert [t.order for t in result.backselect] == [(0, 1, 3, 2), (0, 1, 3), (0, 1)]
    np.testing.assert_allclose(result.backselect[2].scores, [0.9, 0.0])
    assert result.full_score == pytest.approx(l2(x))
    assert result.baseline_score == 0.0
    assert result.evaluations == 2 + 10 + (1 + 6) + (1 + 3)


async def test_public_case_linear() -> None:
    x = np.array([5.0, 1.0, 6.0, 3.0])
    result, _ = await run(x, theta_dot, threshold=5.0, max_sis=3)
    assert result.status == "found"
    assert [s.features for s in result.collection] == [(0,), (3, 1)]
    assert [s.score for s in result.collection] == [5.0, 5.0]  # s_k == τ counts as sufficient
    assert result.backselect[0].order == (2, 1, 3, 0)
    assert result.backselect[0].scores == (10.0, 8.0, 5.0, 0.0)
    assert result.backselect[1].order == (2, 1, 3)
    # third round: f(x with 0, 1, 3 masked) = 0 < τ, so the collection ends after one check row
    assert result.evaluations == 2 + 10 + (1 + 6) + 1


async def test_public_case_linear_stops_at_max_sis() -> None:
    x = np.array([5.0, 1.0, 6.0, 3.0])
    result, _ = await run(x, theta_dot, threshold=5.0, max_sis=1)
    assert [s.features for s in result.collection] == [(0,)]
    assert len(result.backselect) == 1
    assert result.evaluations == 2 + 10


# --------------------------------------------------------------------------- edge cases


async def test_not_confident() -> None:
    x = np.array([0.1, 0.2, 0.3])
    result, log = await run(x, l2, threshold=1.0, max_sis=2)
    assert result.status == "not_confident"
    assert result.collection == ()
    assert result.backselect == ()
    assert result.evaluations == 2 == sum(len(b) for b in log)


async def test_baseline_sufficient_gives_one_empty_sis() -> None:
    x = np.array([3.0, 4.0])
    baseline = np.array([1.0, 1.0])
    score = row_score(l2)
    result = await find_sis(x, baseline, element_groups(x.shape), score, SISParams(threshold=1.0, max_sis=3))
    assert result.status == "baseline_sufficient"
    assert len(result.collection) == 1
    assert result.collection[0].features == ()
    assert result.collection[0].score == pytest.approx(math.sqrt(2))
    assert result.baseline_score == pytest.approx(math.sqrt(2))
    assert result.backselect == ()
    assert result.evaluations == 2


async def test_not_confident_wins_over_baseline_sufficient() -> None:
    x = np.array([0.0, 0.0])
    baseline = np.array([3.0, 3.0])
    result = await find_sis(x, baseline, element_groups(x.shape), row_score(l2), SISParams(threshold=1.0))
    assert result.status == "not_confident"


async def test_whole_input_can_be_the_sis() -> None:
    # every element is needed: removing any one drops below τ
    x = np.array([1.0, 1.0, 1.0])
    result, _ = await run(x, lambda z: float(z.sum()), threshold=3.0, max_sis=2)
    assert [s.features for s in result.collection] == [(2, 1, 0)]
    assert result.collection[0].score == 3.0
    # no features remain for a second round: no check row
    assert result.evaluations == 2 + 6


async def test_nan_scores_never_win_or_suffice() -> None:
    def f(z: np.ndarray) -> float:
        return math.nan if z[1] == 0 else float(z.sum())

    x = np.array([1.0, 5.0, 2.0])
    result, _ = await run(x, f, threshold=4.0)
    assert result.backselect[0].order[0] == 0
    assert [s.features for s in result.collection] == [(1,)]


# --------------------------------------------------------------------------- evaluation counts


@pytest.mark.parametrize("d", [1, 2, 5, 13])
async def test_exact_mode_costs_d_d_plus_1_over_2_per_round(d: int) -> None:
    x = np.arange(1.0, d + 1.0)
    result, log = await run(x, lambda z: float(z.sum()), threshold=0.5)
    assert result.status == "found"
    assert result.evaluations == 2 + d * (d + 1) // 2 == 2 + backselect_cost(d)
    assert sum(len(b) for b in log) == result.evaluations
    # one BackSelect step sees every remaining feature masked in turn, in one logical batch
    assert [len(b) for b in log] == [2, *range(d, 0, -1)]


# --------------------------------------------------------------------------- budget


async def test_budget_exceeded_raises_resource_exhausted() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    with pytest.raises(BudgetExceeded) as err:
        await run(x, l2, threshold=1.0, max_evaluations=11)
    assert str(err.value) == "the explanation needs at least 12 model evaluations, the evaluation budget allows 11"


async def test_budget_exceeded_before_the_round_starts_wastes_no_rows() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    log: list[np.ndarray] = []
    params = SISParams(threshold=1.0, max_evaluations=11)
    with pytest.raises(BudgetExceeded):
        await find_sis(x, np.zeros(4), element_groups((4,)), row_score(l2, log), params)
    assert sum(len(b) for b in log) == 2


async def test_budget_exactly_enough() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    result, _ = await run(x, l2, threshold=1.0, max_sis=3, max_evaluations=23)
    assert result.status == "found"
    assert len(result.collection) == 3


async def test_allow_partial_returns_completed_rounds() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    result, log = await run(x, l2, threshold=1.0, max_sis=3, max_evaluations=20, allow_partial=True)
    assert result.status == "partial"
    assert [s.features for s in result.collection] == [(2,), (3,)]
    assert len(result.backselect) == 2
    # rounds 1 and 2 (19 rows) plus round 3's check; round 3 itself (3 rows) would exceed 20
    assert result.evaluations == 20 == sum(len(b) for b in log)


async def test_partial_before_the_first_sis() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    result, _ = await run(x, l2, threshold=1.0, max_evaluations=5, allow_partial=True)
    assert result.status == "partial"
    assert result.collection == ()
    assert result.backselect == ()
    assert result.full_score == pytest.approx(l2(x))


async def test_partial_when_not_even_f_of_x_fits() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    result, log = await run(x, l2, threshold=1.0, max_evaluations=1, allow_partial=True)
    assert result.status == "partial"
    assert math.isnan(result.full_score) and math.isnan(result.baseline_score)
    assert result.evaluations == 0 and log == []
    with pytest.raises(BudgetExceeded, match="needs at least 2 model evaluations"):
        await run(x, l2, threshold=1.0, max_evaluations=0)


async def test_budget_does_not_matter_when_not_confident() -> None:
    result, _ = await run(np.array([0.1, 0.1]), l2, threshold=1.0, max_evaluations=2)
    assert result.status == "not_confident"


# --------------------------------------------------------------------------- chunking


def _rng_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[np.ndarray], float]]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 5, 5)).astype(np.float32)
    w = rng.normal(size=25)

    def f(z: np.ndarray) -> float:
        return float(np.tanh(z.ravel().astype(np.float64) @ w))

    groups = patch_groups(x.shape, 1, 1)
    return x, np.zeros_like(x), groups, f


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 24])
async def test_chunks_never_exceed_chunk_size_and_results_match(chunk_size: int) -> None:
    x, baseline, groups, f = _rng_problem()
    reference = await find_sis(x, baseline, groups, row_score(f), SISParams(threshold=0.1, max_sis=3))
    log: list[np.ndarray] = []
    params = SISParams(threshold=0.1, max_sis=3, chunk_size=chunk_size)
    result = await find_sis(x, baseline, groups, row_score(f, log), params)
    assert max(len(b) for b in log) <= chunk_size
    assert all(b.dtype == np.float32 and b.shape[1:] == x.shape for b in log)
    assert result.collection == reference.collection
    assert result.backselect == reference.backselect
    assert result.evaluations == reference.evaluations == sum(len(b) for b in log)


async def test_chunks_of_one_step_are_in_flight_together_but_bounded() -> None:
    x, baseline, groups, f = _rng_problem()
    in_flight, peak = 0, 0

    async def score(batch: np.ndarray) -> np.ndarray:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return np.array([f(r) for r in batch])

    await find_sis(x, baseline, groups, score, SISParams(threshold=0.1, chunk_size=4))
    assert peak > 1  # a downstream batcher can coalesce them
    peak = 0
    await find_sis(x, baseline, groups, score, SISParams(threshold=0.1, chunk_size=2, max_inflight_chunks=3))
    assert peak == 3


async def test_score_function_errors_propagate_unchanged() -> None:
    async def score(batch: np.ndarray) -> np.ndarray:
        if len(batch) < 3:
            raise _QueueFull("queue full")
        await asyncio.sleep(0)
        return np.ones(len(batch))

    x = np.ones(8)
    with pytest.raises(_QueueFull, match="queue full"):
        await find_sis(x, np.zeros(8), element_groups(x.shape), score, SISParams(threshold=0.5, chunk_size=3))


async def test_score_function_with_wrong_shape_is_internal(caplog: pytest.LogCaptureFixture) -> None:
    async def score(batch: np.ndarray) -> np.ndarray:
        return np.ones((len(batch), 2))

    with pytest.raises(ScoringError, match="scoring failed: the model returned a malformed result"):
        await find_sis(np.ones(3), np.zeros(3), element_groups((3,)), score, SISParams(threshold=0.5))
    assert "returned shape (2, 2) for 2 rows" in caplog.text  # details go to the log only


# --------------------------------------------------------------------------- cancellation


async def test_cancellation_stops_at_the_next_await() -> None:
    started = 0
    first_calls = asyncio.Event()

    async def slow(batch: np.ndarray) -> np.ndarray:
        nonlocal started
        started += 1
        if started >= 4:
            first_calls.set()
        await asyncio.sleep(0.01)
        return batch.reshape(len(batch), -1).sum(axis=1)

    x = np.arange(1.0, 41.0)
    params = SISParams(threshold=1.0, chunk_size=5, max_inflight_chunks=2)
    task = asyncio.create_task(find_sis(x, np.zeros_like(x), element_groups(x.shape), slow, params))
    await first_calls.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    at_cancel = started
    await asyncio.sleep(0.05)
    assert started == at_cancel
    assert started < 2 + 40 * 41 // 2 // 5


# --------------------------------------------------------------------------- progress


async def test_progress_after_every_step() -> None:
    events: list[ProgressEvent] = []
    x = np.array([0.9, 0.9, 10.0, 5.0])
    params = SISParams(threshold=1.0, max_sis=3)
    result = await find_sis(x, np.zeros(4), element_groups((4,)), row_score(l2), params, events.append)
    assert [(e.round, e.step, e.features_left) for e in events] == [
        (0, 0, 3), (0, 1, 2), (0, 2, 1), (0, 3, 0),
        (1, 0, 2), (1, 1, 1), (1, 2, 0),
        (2, 0, 1), (2, 1, 0),
    ]  # fmt: skip
    assert [e.evaluations for e in events] == [6, 9, 11, 12, 16, 18, 19, 22, 23]
    assert events[-1].evaluations == result.evaluations


# --------------------------------------------------------------------------- batched mode


async def test_batched_k1_is_exact() -> None:
    x, baseline, groups, f = _rng_problem()
    exact = await find_sis(x, baseline, groups, row_score(f), SISParams(threshold=0.2, max_sis=2))
    k1 = await find_sis(x, baseline, groups, row_score(f), SISParams(threshold=0.2, max_sis=2, batch_k=1))
    assert (k1.collection, k1.backselect, k1.evaluations) == (exact.collection, exact.backselect, exact.evaluations)


@pytest.mark.parametrize("k", [2, 4, 8])
async def test_batched_mode_cuts_evaluations_by_about_k(k: int) -> None:
    d = 64
    rng = np.random.default_rng(k)
    theta = rng.uniform(0.5, 1.5, size=d)
    x = rng.uniform(0.5, 1.5, size=d)

    def f(z: np.ndarray) -> float:
        return float(z @ theta)

    tau = 0.5 * f(x)
    exact, _ = await run(x, f, threshold=tau)
    batched, log = await run(x, f, threshold=tau, batch_k=k)
    assert exact.evaluations == 2 + d * (d + 1) // 2
    assert batched.evaluations == sum(len(b) for b in log)
    # f(x), f(baseline), the round, and one row re-scoring the SIS when FindSIS settled on an estimate
    assert batched.evaluations - 2 - backselect_cost(d, k) in (0, 1)
    assert exact.evaluations / batched.evaluations > 0.8 * k
    # an additive score ranks features the same way whether removed one or k at a time
    assert batched.backselect[0].order == exact.backselect[0].order
    # the last removal of every step carries an exact score
    for j in range(k - 1, d, k):
        removed = list(batched.backselect[0].order[: j + 1])
        assert batched.backselect[0].scores[j] == pytest.approx(f(np.where(np.isin(np.arange(d), removed), 0, x)))
    present = np.isin(np.arange(d), batched.collection[0].features)
    assert batched.collection[0].score == pytest.approx(f(np.where(present, x, 0)))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": math.nan}, "threshold must be a finite number, got nan"),
        ({"threshold": 1.0, "max_sis": 0}, "max_sis must be at least 1, got 0"),
        ({"threshold": 1.0, "batch_k": 0}, "batch_k must be at least 1, got 0"),
        ({"threshold": 1.0, "chunk_size": 0}, "chunk_size must be at least 1, got 0"),
        ({"threshold": 1.0, "max_evaluations": -1}, "max_evaluations must be non-negative or unset, got -1"),
    ],
)
def test_params_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SISParams(**kwargs)  # type: ignore[arg-type]
    assert str(err.value) == message


async def test_find_sis_validates_shapes() -> None:
    score = row_score(l2)
    p = SISParams(threshold=1.0)
    with pytest.raises(InvalidInput, match=r"baseline has shape \[3\], expected the input shape \[4\]"):
        await find_sis(np.ones(4), np.zeros(3), element_groups((4,)), score, p)
    with pytest.raises(InvalidInput, match=r"group map has shape \[2, 2\], expected the input shape \[4\]"):
        await find_sis(np.ones(4), np.zeros(4), element_groups((2, 2)), score, p)
    with pytest.raises(InvalidInput, match="first missing: 1"):
        await find_sis(np.ones(3), np.zeros(3), np.array([0, 2, 2]), score, p)


@pytest.mark.parametrize("module", [sis_module, features_module, baselines_module, agreement_module])
def test_docstring_examples_run(module: object) -> None:
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert attempted > 0
    assert failed == 0
