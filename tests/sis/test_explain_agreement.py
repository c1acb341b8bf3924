"""Dense vs pruned agreement on constructed cases with known answers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import numpy as np
import pytest

from sisguard.sis import (
    AgreementResult,
    DivergenceThresholds,
    PairExplanation,
    ProgressEvent,
    ScoreFn,
    SISParams,
    compute_agreement,
    element_groups,
    explain_pair,
    jaccard,
    rank_correlation,
)


class _QueueFull(Exception):
    """Stands for a caller's own error raised inside its score function."""


def row_score(f: Callable[[np.ndarray], float], log: list[int] | None = None) -> ScoreFn:
    async def score(batch: np.ndarray) -> np.ndarray:
        if log is not None:
            log.append(len(batch))
        return np.array([f(row) for row in batch], dtype=np.float64)

    return score


async def pair(
    x: np.ndarray,
    dense: Callable[[np.ndarray], float] | None,
    pruned: Callable[[np.ndarray], float] | None,
    tau: float,
    *,
    dense_top1: int = 0,
    pruned_top1: int = 0,
    thresholds: DivergenceThresholds | None = None,
    baseline: np.ndarray | None = None,
) -> PairExplanation:
    return await explain_pair(
        x,
        np.zeros_like(x) if baseline is None else baseline,
        element_groups(x.shape),
        dense_score=None if dense is None else row_score(dense),
        pruned_score=None if pruned is None else row_score(pruned),
        params=SISParams(threshold=tau, max_sis=2),
        dense_top1=dense_top1,
        pruned_top1=pruned_top1,
        thresholds=thresholds or DivergenceThresholds(),
    )


THETA = np.array([1.0, 2.0, 0.0, 1.0])


def theta_dot(z: np.ndarray) -> float:
    return float(z @ THETA)


def test_jaccard() -> None:
    assert jaccard([], []) == 1.0
    assert jaccard([1, 2], []) == 0.0
    assert jaccard([1, 2, 3], [3, 2, 1]) == 1.0
    assert jaccard([1, 2, 3], [3, 4]) == 0.25


@pytest.mark.parametrize(
    ("a", "b", "rho"),
    [
        ([0, 1, 2, 3], [0, 1, 2, 3], 1.0),
        ([0, 1, 2, 3], [3, 2, 1, 0], -1.0),
        ([0, 1, 2, 3], [1, 0, 2, 3], 0.8),
        ([1, 2, 3, 0], [0, 1, 2, 3], -0.2),
        ([0, 1, 2, 9], [2, 1, 7, 0], -1.0),  # over the common features 0, 1, 2 only
        ([5], [5], 1.0),  # fewer than two common features
        ([1, 2], [3, 4], 1.0),
        ([], [], 1.0),
    ],
)
def test_rank_correlation(a: list[int], b: list[int], rho: float) -> None:
    assert rank_correlation(a, b) == pytest.approx(rho)


async def test_identical_models_agree() -> None:
    x = np.array([5.0, 1.0, 6.0, 3.0])
    out = await pair(x, theta_dot, theta_dot, 5.0, thresholds=DivergenceThresholds(min_rank_correlation=0.9))
    assert out.target == 0 and out.threshold == 5.0
    assert out.dense is not None and out.pruned is not None and out.agreement is not None
    assert out.dense.collection == out.pruned.collection
    a = out.agreement
    assert a.top1_agree
    assert a.confidence_gap == 0.0
    assert a.iou_first == 1.0 and a.iou_union == 1.0
    assert a.rank_correlation == 1.0
    assert a.dense_sis_sufficient_for_pruned is True and a.pruned_sis_sufficient_for_dense is True
    assert a.dense_sis_score_on_pruned == 5.0 and a.pruned_sis_score_on_dense == 5.0
    assert (a.dense_sis_size, a.pruned_sis_size) == (1, 1)
    assert not a.divergent and a.reasons == ()


async def test_disjoint_rationales_diverge() -> None:
    x = np.array([2.0, 2.0, 2.0, 2.0])
    out = await pair(
        x,
        lambda z: float(z[0]),
        lambda z: float(z[3]),
        1.0,
        thresholds=DivergenceThresholds(min_rank_correlation=0.0),
    )
    assert out.dense is not None and out.pruned is not None and out.agreement is not None
    assert out.dense.collection[0].features == (0,)
    assert out.pruned.collection[0].features == (3,)
    a = out.agreement
    assert a.iou_first == 0.0 and a.iou_union == 0.0
    assert a.dense_sis_sufficient_for_pruned is False and a.pruned_sis_sufficient_for_dense is False
    assert a.dense_sis_score_on_pruned == 0.0 and a.pruned_sis_score_on_dense == 0.0
    # dense removes 1, 2, 3, 0; pruned removes 0, 1, 2, 3
    assert a.rank_correlation == pytest.approx(-0.2)
    assert a.top1_agree and a.confidence_gap == 0.0
    assert a.divergent
    assert a.reasons == (
        "low_iou",
        "dense_sis_insufficient_for_pruned",
        "pruned_sis_insufficient_for_dense",
        "low_rank_correlation",
    )


async def test_cross_sufficiency_can_be_waived() -> None:
    x = np.array([2.0, 2.0, 2.0, 2.0])
    thresholds = DivergenceThresholds(min_iou=0.0, require_cross_sufficiency=False)
    out = await pair(x, lambda z: float(z[0]), lambda z: float(z[3]), 1.0, thresholds=thresholds)
    assert out.agreement is not None
    assert out.agreement.dense_sis_sufficient_for_pruned is False  # still measured
    assert not out.agreement.divergent and out.agreement.reasons == ()


async def test_pruned_not_confident() -> None:
    x = np.array([1.0, 1.0, 1.0])
    out = await pair(
        x,
        lambda z: float(z.sum()),
        lambda z: 0.1 * float(z.sum()),
        2.0,
        dense_top1=1,
        pruned_top1=2,
        thresholds=DivergenceThresholds(min_rank_correlation=0.5),
    )
    assert out.pruned is not None and out.pruned.status == "not_confident"
    a = out.agreement
    assert a is not None
    assert a.confidence_gap == pytest.approx(3.0 - 0.3)
    assert a.pruned_sis_sufficient_for_dense is None and math.isnan(a.pruned_sis_score_on_dense)
    assert a.dense_sis_sufficient_for_pruned is False
    assert a.dense_sis_score_on_pruned == pytest.approx(0.2)
    assert math.isnan(a.rank_correlation)  # no pruned trace: no verdict on the order
    assert (a.dense_sis_size, a.pruned_sis_size) == (2, 0)
    assert a.reasons == ("top1_differs", "dense_sis_insufficient_for_pruned", "pruned_not_confident")
    assert out.target == 1


async def test_both_baseline_sufficient() -> None:
    x = np.array([3.0, 4.0])
    baseline = np.array([1.0, 1.0])
    out = await pair(x, theta_dot_2, theta_dot_2, 1.0, baseline=baseline)
    assert out.dense is not None and out.dense.status == "baseline_sufficient"
    a = out.agreement
    assert a is not None
    assert a.iou_first == 1.0 and a.dense_sis_size == 0
    assert a.dense_sis_sufficient_for_pruned is True  # the empty SIS is the baseline itself
    assert not a.divergent


def theta_dot_2(z: np.ndarray) -> float:
    return float(z.sum())


async def test_one_variant_only() -> None:
    x = np.array([5.0, 1.0, 6.0, 3.0])
    out = await pair(x, theta_dot, None, 5.0)
    assert out.dense is not None and out.pruned is None and out.agreement is None
    out = await pair(x, None, theta_dot, 5.0)
    assert out.dense is None and out.pruned is not None and out.agreement is None


async def test_both_run_concurrently_and_progress_is_tagged() -> None:
    events: list[tuple[str, ProgressEvent]] = []
    x = np.array([5.0, 1.0, 6.0, 3.0])
    order: list[str] = []

    def tagged(name: str) -> ScoreFn:
        async def score(batch: np.ndarray) -> np.ndarray:
            order.append(name)
            await asyncio.sleep(0)
            return batch @ THETA

        return score

    out = await explain_pair(
        x,
        np.zeros_like(x),
        element_groups(x.shape),
        dense_score=tagged("dense"),
        pruned_score=tagged("pruned"),
        params=SISParams(threshold=5.0),
        dense_top1=0,
        pruned_top1=0,
        thresholds=DivergenceThresholds(),
        progress=lambda name, e: events.append((name, e)),
        target=3,
    )
    assert out.target == 3
    assert {name for name, _ in events} == {"dense", "pruned"}
    assert [e.step for name, e in events if name == "dense"] == [0, 1, 2, 3]
    # interleaved calls: neither side waited for the other to finish
    first_pruned = order.index("pruned")
    assert "dense" in order[first_pruned:]


async def test_failure_on_one_side_cancels_the_other() -> None:
    dense_calls: list[int] = []

    async def slow_dense(batch: np.ndarray) -> np.ndarray:
        dense_calls.append(len(batch))
        await asyncio.sleep(0.01)
        return batch.sum(axis=1)

    async def failing_pruned(batch: np.ndarray) -> np.ndarray:
        await asyncio.sleep(0.015)
        raise _QueueFull("queue full")

    x = np.arange(1.0, 31.0)
    with pytest.raises(_QueueFull, match="queue full"):
        await explain_pair(
            x,
            np.zeros_like(x),
            element_groups(x.shape),
            dense_score=slow_dense,
            pruned_score=failing_pruned,
            params=SISParams(threshold=1.0),
            dense_top1=0,
            pruned_top1=0,
            thresholds=DivergenceThresholds(),
        )
    calls = len(dense_calls)
    await asyncio.sleep(0.05)
    assert len(dense_calls) == calls
    assert calls < 30


async def test_each_model_can_keep_its_own_threshold() -> None:
    # dense and pruned find the same SIS; the dense SIS keeps the pruned model at 0.6
    x = np.array([1.0, 1.0, 0.0])
    result = await pair(x, lambda z: float(z[:2].sum()) / 2, lambda z: float(z[:2].sum()) * 0.3, 0.5)
    d, p = result.dense, result.pruned
    assert d is not None and p is not None

    def agree(pruned_threshold: float | None) -> AgreementResult:
        return compute_agreement(
            d, p, threshold=0.5, pruned_threshold=pruned_threshold, dense_top1=0, pruned_top1=0,
            dense_sis_score_on_pruned=0.6, pruned_sis_score_on_dense=1.0, thresholds=DivergenceThresholds(),
        )

    assert agree(None).dense_sis_sufficient_for_pruned is True  # one tau: 0.6 >= 0.5
    assert agree(0.7).dense_sis_sufficient_for_pruned is False  # the pruned model's own tau: 0.6 < 0.7
    assert agree(0.7).pruned_sis_sufficient_for_dense is True  # the other direction keeps the dense tau
    assert "dense_sis_insufficient_for_pruned" in agree(0.7).reasons
