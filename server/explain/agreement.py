"""Dense vs pruned rationales: explain both, then measure how far their SIS agree.

Measures (see :class:`AgreementResult`): top-1 agreement, confidence gap, Jaccard overlap of the
first SIS and of the collections' unions, cross-sufficiency (does one model's first SIS keep the
other model above τ?) and Spearman correlation of the first-round BackSelect removal orders.
:class:`DivergenceThresholds` turns them into a divergent flag with reasons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sisguard.server.explain.features import subset_input
from sisguard.server.explain.sis import (
    ProgressEvent,
    ScoreFn,
    SISParams,
    SISResult,
    find_sis,
    gather_or_cancel,
)

__all__ = [
    "AgreementResult",
    "DivergenceReason",
    "DivergenceThresholds",
    "PairExplanation",
    "compute_agreement",
    "explain_pair",
    "jaccard",
    "rank_correlation",
    "score_along_path",
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


@dataclass(frozen=True)
class PairExplanation:
    """Both explanations of one input; a side is ``None`` when it was not asked for.

    ``control`` and ``control_agreement`` (dense vs control, measured exactly like dense vs pruned)
    are set only when a control score function was given.
    """

    target: int
    threshold: float
    dense: SISResult | None
    pruned: SISResult | None
    agreement: AgreementResult | None
    control: SISResult | None = None
    control_agreement: AgreementResult | None = None


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


def _first(result: SISResult) -> tuple[int, ...] | None:
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
) -> AgreementResult:
    """Agreement of two finished explanations, given the cross-sufficiency scores (``None``: no SIS)."""
    first_d, first_p = _first(dense), _first(pruned)
    both = first_d is not None and first_p is not None
    iou_first = jaccard(first_d or (), first_p or ())
    d_suff = None if dense_sis_score_on_pruned is None else bool(dense_sis_score_on_pruned >= threshold)
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


async def _score_subset(
    score: ScoreFn, x: np.ndarray, baseline: np.ndarray, groups: np.ndarray, features: tuple[int, ...] | None
) -> float | None:
    if features is None:
        return None
    out = np.asarray(await score(subset_input(x, baseline, groups, features)[None]), dtype=np.float64)
    return float(out.reshape(-1)[0])


async def explain_pair(
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    *,
    dense_score: ScoreFn | None,
    pruned_score: ScoreFn | None,
    params: SISParams,
    dense_top1: int,
    pruned_top1: int,
    thresholds: DivergenceThresholds,
    progress: Callable[[str, ProgressEvent], None] | None = None,
    target: int | None = None,
    control_score: ScoreFn | None = None,
    control_top1: int | None = None,
) -> PairExplanation:
    """Explain ``x`` under the dense and/or pruned score functions concurrently; compare when both ran.

    ``params.threshold`` is absolute. ``dense_top1``/``pruned_top1`` are the models' top-1 classes
    on the full input; ``target`` (default ``dense_top1``) is only recorded in the result — the
    score functions already score it. Cross-sufficiency costs one extra row per side; those rows
    are not part of either side's ``evaluations``. If one side fails, the other is cancelled and
    the error propagates. With ``control_score`` (and ``control_top1``) the control is explained
    at the same time and compared with the dense model the same way.
    """
    scorers = {"dense": dense_score, "pruned": pruned_score, "control": control_score}
    names = [n for n, fn in scorers.items() if fn is not None]
    runs = [
        find_sis(x, baseline, groups, scorers[n], params, None if progress is None else _tagged(progress, n))  # type: ignore[arg-type]
        for n in names
    ]
    results = dict(zip(names, await gather_or_cancel(runs) if runs else [], strict=True))
    dense = results.get("dense")
    xa, ga = np.asarray(x), np.asarray(groups)
    ba = np.asarray(baseline).astype(xa.dtype)

    async def compare(other: str, other_top1: int) -> AgreementResult | None:
        result, fn = results.get(other), scorers[other]
        if dense is None or result is None or dense_score is None or fn is None:
            return None
        d_on_o, o_on_d = await gather_or_cancel(
            [_score_subset(fn, xa, ba, ga, _first(dense)), _score_subset(dense_score, xa, ba, ga, _first(result))]
        )
        return compute_agreement(
            dense,
            result,
            threshold=params.threshold,
            dense_top1=dense_top1,
            pruned_top1=other_top1,
            dense_sis_score_on_pruned=d_on_o,
            pruned_sis_score_on_dense=o_on_d,
            thresholds=thresholds,
        )

    agree, control_agree = await gather_or_cancel(
        [compare("pruned", pruned_top1), compare("control", dense_top1 if control_top1 is None else control_top1)]
    )
    return PairExplanation(
        target=dense_top1 if target is None else int(target),
        threshold=float(params.threshold),
        dense=dense,
        pruned=results.get("pruned"),
        agreement=agree,
        control=results.get("control"),
        control_agreement=control_agree,
    )


async def score_along_path(
    score: ScoreFn,
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    order: Sequence[int],
    chunk_size: int = 64,
) -> np.ndarray:
    """Scores of the inputs along a BackSelect path: row ``k`` has the first ``k + 1`` features of
    ``order`` set to the baseline (the inputs behind ``BackSelectTrace.scores``). Built and scored in
    chunks of ``chunk_size`` rows, so memory stays ``O(chunk_size × input size)`` whatever ``d``.
    """
    xa = np.asarray(x)
    ba = np.asarray(baseline).astype(xa.dtype)
    ga = np.asarray(groups)
    gflat = ga.reshape(-1)
    # rank of each element's feature in the order: an element is masked in row k when rank <= k
    pos = np.full(int(gflat.max()) + 1 if gflat.size else 0, len(order), dtype=np.int64)
    pos[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    rank = pos[gflat].reshape(xa.shape)
    out: list[np.ndarray] = []
    for start in range(0, len(order), chunk_size):
        ks = np.arange(start, min(start + chunk_size, len(order)))
        masked = rank[None] <= ks.reshape(-1, *([1] * xa.ndim))
        batch = np.where(masked, ba[None], xa[None])
        out.append(np.asarray(await score(batch), dtype=np.float64).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


def _tagged(progress: Callable[[str, ProgressEvent], None], name: str) -> Callable[[ProgressEvent], None]:
    def report(event: ProgressEvent) -> None:
        progress(name, event)

    return report
