"""How far two models' SIS agree: pure measures over two :class:`SISResult`.

Measures (see :class:`AgreementResult`): top-1 agreement, confidence gap, Jaccard overlap of the
first SIS and of the collections' unions, cross-sufficiency (does one model's first SIS keep the
other model above τ?) and Spearman correlation of the first-round BackSelect removal orders.
:class:`DivergenceThresholds` turns them into a divergent flag with reasons.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sisguard.sis.backselect import SISResult

__all__ = [
    "AgreementResult",
    "DivergenceReason",
    "DivergenceThresholds",
    "compute_agreement",
    "first_sis",
    "jaccard",
    "rank_correlation",
]

DivergenceReason = Literal[
    "top1_differs",
    "low_iou",
    "dense_sis_insufficient_for_pruned",
    "pruned_sis_insufficient_for_dense",
    "pruned_not_confident",
    "low_rank_correlation",
]


@dataclass(frozen=True)
class DivergenceThresholds:
    """When a pair counts as divergent.

    Attributes:
        min_iou: first-SIS Jaccard overlap below this is ``low_iou``.
        min_rank_correlation: removal-order Spearman below this is ``low_rank_correlation``;
            ``None`` disables the check.
        require_cross_sufficiency: a first SIS that does not keep the other model at ``τ`` is a
            divergence.
    """

    min_iou: float = 0.5
    min_rank_correlation: float | None = None
    require_cross_sufficiency: bool = True


@dataclass(frozen=True)
class AgreementResult:
    """How far the dense and pruned explanations of one input agree.

    ``*_sufficient_for_*`` is ``None`` and the matching ``*_score_on_*`` NaN when a side has no SIS.
    ``rank_correlation`` is NaN when a side has no BackSelect trace (not confident, baseline
    sufficient, or partial before the first round finished). ``reasons`` keep a fixed order.
    """

    top1_agree: bool
    confidence_gap: float
    iou_first: float
    iou_union: float
    dense_sis_sufficient_for_pruned: bool | None
    pruned_sis_sufficient_for_dense: bool | None
    dense_sis_score_on_pruned: float
    pruned_sis_score_on_dense: float
    rank_correlation: float
    dense_sis_size: int
    pruned_sis_size: int
    divergent: bool
    reasons: tuple[DivergenceReason, ...]


def jaccard(a: Iterable[int], b: Iterable[int]) -> float:
    """``|a ∩ b| / |a ∪ b|``; 1.0 when both are empty.

    >>> jaccard([1, 2, 3], [2, 3, 4])
    0.5
    """
    sa, sb = set(a), set(b)
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def rank_correlation(order_a: Sequence[int], order_b: Sequence[int]) -> float:
    """Spearman correlation of two removal orders over the features they share.

    Each shared feature is ranked by its position in each order (positions re-ranked among the
    shared features, so there are no ties) and ``1 - 6 Σ δ² / (n (n² - 1))`` is returned. With
    fewer than two shared features the orders cannot disagree and the result is 1.0.

    >>> rank_correlation([0, 1, 2], [0, 1, 2]), rank_correlation([0, 1, 2], [2, 1, 0])
    (1.0, -1.0)
    """
    pos_a = {int(f): i for i, f in enumerate(order_a)}
    pos_b = {int(f): i for i, f in enumerate(order_b)}
    common = sorted(pos_a.keys() & pos_b.keys())
    n = len(common)
    if n < 2:
        return 1.0
    ra = np.argsort(np.argsort([pos_a[f] for f in common]))
    rb = np.argsort(np.argsort([pos_b[f] for f in common]))
    delta = (ra - rb).astype(np.float64)
    return float(1.0 - 6.0 * float(np.sum(delta * delta)) / (n * (n * n - 1)))


def first_sis(result: SISResult) -> tuple[int, ...] | None:
    return result.collection[0].features if result.collection else None


def _union(result: SISResult) -> set[int]:
    return {f for s in result.collection for f in s.features}


def compute_agreement(
    dense: SISResult,
    pruned: SISResult,
    *,
    threshold: float,
    dense_top1: int,
    pruned_top1: int,
    dense_sis_score_on_pruned: float | None,
    pruned_sis_score_on_dense: float | None,
    thresholds: DivergenceThresholds,
    pruned_threshold: float | None = None,
) -> AgreementResult:
    """Agreement of two finished explanations, given the cross-sufficiency scores (``None``: no SIS).

    ``threshold`` is the τ both models were explained at; ``pruned_threshold``, when each model has
    its own τ (e.g. a fraction of its own confidence), is the pruned model's: the dense SIS is then
    sufficient for the pruned model when it keeps it at ``pruned_threshold``.
    """
    first_d, first_p = first_sis(dense), first_sis(pruned)
    both = first_d is not None and first_p is not None
    iou_first = jaccard(first_d or (), first_p or ())
    tau_p = threshold if pruned_threshold is None else pruned_threshold
    d_suff = None if dense_sis_score_on_pruned is None else bool(dense_sis_score_on_pruned >= tau_p)
    p_suff = None if pruned_sis_score_on_dense is None else bool(pruned_sis_score_on_dense >= threshold)
    if dense.backselect and pruned.backselect:
        rho = rank_correlation(dense.backselect[0].order, pruned.backselect[0].order)
    else:
        rho = math.nan

    reasons: list[DivergenceReason] = []
    if dense_top1 != pruned_top1:
        reasons.append("top1_differs")
    if both and iou_first < thresholds.min_iou:
        reasons.append("low_iou")
    if thresholds.require_cross_sufficiency:
        if d_suff is False:
            reasons.append("dense_sis_insufficient_for_pruned")
        if p_suff is False:
            reasons.append("pruned_sis_insufficient_for_dense")
    if pruned.status == "not_confident" and dense.full_score >= threshold:
        reasons.append("pruned_not_confident")
    if thresholds.min_rank_correlation is not None and rho < thresholds.min_rank_correlation:
        reasons.append("low_rank_correlation")  # NaN compares false: no trace, no verdict

    return AgreementResult(
        top1_agree=dense_top1 == pruned_top1,
        confidence_gap=float(dense.full_score - pruned.full_score),
        iou_first=iou_first,
        iou_union=jaccard(_union(dense), _union(pruned)),
        dense_sis_sufficient_for_pruned=d_suff,
        pruned_sis_sufficient_for_dense=p_suff,
        dense_sis_score_on_pruned=math.nan if dense_sis_score_on_pruned is None else dense_sis_score_on_pruned,
        pruned_sis_score_on_dense=math.nan if pruned_sis_score_on_dense is None else pruned_sis_score_on_dense,
        rank_correlation=rho,
        dense_sis_size=len(first_d or ()),
        pruned_sis_size=len(first_p or ()),
        divergent=bool(reasons),
        reasons=tuple(reasons),
    )


