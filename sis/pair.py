"""Explain one input under two or three models at once and compare their rationales.

Orchestration over :func:`~sisguard.sis.backselect.find_sis` (one run per model, concurrently)
and the pure measures of :mod:`sisguard.sis.agreement`; still model-free: every model is an async
score function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sisguard.sis.agreement import AgreementResult, DivergenceThresholds, compute_agreement, first_sis
from sisguard.sis.backselect import ProgressEvent, ScoreFn, SISParams, SISResult, find_sis, gather_or_cancel
from sisguard.sis.features import subset_input

__all__ = ["PairExplanation", "explain_pair", "score_along_path"]


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
    full_scores: Mapping[str, float] | None = None,
) -> PairExplanation:
    """Explain ``x`` under the dense and/or pruned score functions concurrently; compare when both ran.

    ``params.threshold`` is absolute. ``dense_top1``/``pruned_top1`` are the models' top-1 classes
    on the full input; ``target`` (default ``dense_top1``) is only recorded in the result — the
    score functions already score it. Cross-sufficiency costs one extra row per side; those rows
    are not part of either side's ``evaluations``. If one side fails, the other is cancelled and
    the error propagates. With ``control_score`` (and ``control_top1``) the control is explained
    at the same time and compared with the dense model the same way. ``full_scores`` (variant → f(x))
    are the scores of the full input where the caller has them already: each side then runs only
    ``f(baseline)`` before BackSelect (the evaluation counts stay the same).
    """
    scorers = {"dense": dense_score, "pruned": pruned_score, "control": control_score}
    names = [n for n, fn in scorers.items() if fn is not None]
    known = full_scores or {}
    runs = [
        find_sis(
            x,
            baseline,
            groups,
            scorers[n],  # type: ignore[arg-type]
            params,
            None if progress is None else _tagged(progress, n),
            full_score=known.get(n),
        )
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
            [_score_subset(fn, xa, ba, ga, first_sis(dense)), _score_subset(dense_score, xa, ba, ga, first_sis(result))]
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
