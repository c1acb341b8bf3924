"""Rationale agreement of dense and pruned models through sisguard's SIS engine.

For each of a few test inputs ``x`` the target class ``c`` is the dense model's top-1 class.
Each model ``m`` is scored by its softmax probability of ``c``; its threshold is
``τ_m(x) = fraction · f_m(x)_c`` (its own confidence, so a less confident pruned model is not
counted as "not confident" merely for being pruned). Features are pixels (all channels of
one position) for inputs up to 16×16, otherwise a grid of 8×8 patches; masked features take
the value 0. The first SIS of the two models are compared with the engine's agreement measures
(:func:`sisguard.sis.compute_agreement`, as the server compares them), each model at its own τ:

* **IoU** — ``iou_first``, ``|S_dense ∩ S_pruned| / |S_dense ∪ S_pruned|``;
* **cross-sufficiency** dense→pruned — with only ``S_dense`` present, the pruned model still
  reaches ``τ_pruned``; pruned→dense the reverse.

Everything runs in process on ONNX Runtime sessions; no server is needed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from sisguard.prune.errors import PruneError
from sisguard.prune.evaluation_measures import softmax
from sisguard.prune.export import run_onnx
from sisguard.sis import (
    AgreementResult,
    DivergenceThresholds,
    SISParams,
    SISResult,
    compute_agreement,
    element_groups,
    find_sis,
    first_sis,
    num_features,
    patch_groups,
    pixel_groups,
    subset_input,
)

Score = Callable[[np.ndarray], Awaitable[np.ndarray]]


def feature_groups(input_shape: tuple[int, ...]) -> np.ndarray:
    """Pixel groups for small images, 8×8 grids of patches for larger ones, elements otherwise."""
    if len(input_shape) == 3:
        _, h, w = input_shape
        if h * w <= 256:
            return pixel_groups(input_shape)
        return patch_groups(input_shape, math.ceil(h / 8), math.ceil(w / 8))
    if math.prod(input_shape) <= 256:
        return element_groups(input_shape)
    raise PruneError(f"rationale agreement needs [C, H, W] inputs or at most 256 elements, got {list(input_shape)}")


def class_score(session: Any, target: int) -> Score:
    """An async score function: softmax probability of ``target`` under an ONNX ``session``."""

    async def score(batch: np.ndarray) -> np.ndarray:
        logits = await asyncio.to_thread(run_onnx, session, batch.astype(np.float32, copy=False))
        return softmax(logits)[:, target]

    return score


async def explain(session: Any, x: np.ndarray, target: int, groups: np.ndarray, fraction: float
                  ) -> tuple[SISResult, float]:
    """SIS of ``session`` on ``x`` for class ``target`` with ``τ = fraction · f(x)_target``, and that τ."""
    score = class_score(session, target)
    full = float((await score(x[None]))[0])
    threshold = fraction * full
    result = await find_sis(x, np.zeros_like(x), groups, score, SISParams(threshold=threshold, chunk_size=256))
    return result, threshold


async def _score_of(session: Any, x: np.ndarray, groups: np.ndarray, features: tuple[int, ...], target: int) -> float:
    """``session``'s score of ``target`` with only ``features`` of ``x`` present (the rest at 0)."""
    masked = subset_input(x, np.zeros_like(x), groups, features)
    return float((await class_score(session, target)(masked[None]))[0])


async def compare(dense: Any, pruned: Any, x: np.ndarray, target: int, groups: np.ndarray,
                  dense_explained: tuple[SISResult, float], fraction: float) -> AgreementResult | None:
    """The engine's agreement of the two first SIS on ``x`` (``None`` when a side found none).

    Each model keeps its own τ: the dense SIS is sufficient for the pruned model when it keeps the
    pruned model at ``τ_pruned``, the pruned SIS for the dense model at ``τ_dense``.
    """
    de, tau_d = dense_explained
    pe, tau_p = await explain(pruned, x, target, groups, fraction)
    first_d, first_p = first_sis(de), first_sis(pe)
    if first_d is None or first_p is None:
        return None
    return compute_agreement(
        de, pe, threshold=tau_d, pruned_threshold=tau_p, dense_top1=target, pruned_top1=target,
        dense_sis_score_on_pruned=await _score_of(pruned, x, groups, first_d, target),
        pruned_sis_score_on_dense=await _score_of(dense, x, groups, first_p, target),
        thresholds=DivergenceThresholds(),
    )


async def rationale_agreement(dense: Any, pruned: dict[str, Any], x: np.ndarray, fraction: float = 0.9,
                              ) -> dict[str, dict[str, Any]]:
    """IoU and cross-sufficiency of every pruned session against ``dense`` on the inputs ``x``.

    Returns, per pruned name: ``iou`` (mean over inputs where both SIS exist), ``dense_to_pruned``
    and ``pruned_to_dense`` (shares of those inputs where the other model's SIS suffices),
    ``dense_sis_size`` / ``pruned_sis_size`` (mean share of features), ``compared`` (inputs
    counted) and ``samples``.
    """
    if not 0.0 < fraction <= 1.0:
        raise PruneError(f"SIS threshold fraction must lie in (0, 1], got {fraction}")
    groups = feature_groups(tuple(x.shape[1:]))
    d = num_features(groups)
    targets = [int(t) for t in run_onnx(dense, x).argmax(axis=1)]
    dense_expl = [await explain(dense, xi, t, groups, fraction) for xi, t in zip(x, targets, strict=True)]
    results: dict[str, dict[str, Any]] = {}
    for name, session in pruned.items():
        agreements = [
            a for xi, t, de in zip(x, targets, dense_expl, strict=True)
            if (a := await compare(dense, session, xi, t, groups, de, fraction)) is not None
        ]
        results[name] = {
            "samples": len(x),
            "compared": len(agreements),
            "iou": _mean([a.iou_first for a in agreements]),
            "dense_to_pruned": _mean([bool(a.dense_sis_sufficient_for_pruned) for a in agreements]),
            "pruned_to_dense": _mean([bool(a.pruned_sis_sufficient_for_dense) for a in agreements]),
            "dense_sis_size": _mean([a.dense_sis_size / d for a in agreements]),
            "pruned_sis_size": _mean([a.pruned_sis_size / d for a in agreements]),
        }
    return results


def _mean(values: Sequence[float | bool]) -> float | None:
    return float(np.mean(values)) if len(values) else None
