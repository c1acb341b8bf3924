"""Rationale agreement of dense and pruned models through sisguard's SIS engine.

For each of a few test inputs ``x`` the target class ``c`` is the dense model's top-1 class.
Each model ``m`` is scored by its softmax probability of ``c``; its threshold is
``τ_m(x) = fraction · f_m(x)_c`` (its own confidence, so a less confident pruned model is not
counted as "not confident" merely for being pruned). Features are pixels (all channels of
one position) for inputs up to 16×16, otherwise a grid of 8×8 patches; masked features take
the value 0. From the first SIS of each model:

* **IoU** — ``|S_dense ∩ S_pruned| / |S_dense ∪ S_pruned|``;
* **cross-sufficiency** dense→pruned — with only ``S_dense`` present, the pruned model still
  reaches ``τ_pruned``; pruned→dense the reverse.

Everything runs in process on ONNX Runtime sessions; no server is needed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sisguard.prune.errors import PruneError
from sisguard.prune.export import run_onnx
from sisguard.prune.metrics import softmax
from sisguard.sis import (
    SISParams,
    element_groups,
    find_sis,
    jaccard,
    patch_groups,
    pixel_groups,
    subset_input,
)

Score = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Explanation:
    """First SIS of one model on one input (``None`` when the engine found none)."""

    status: str
    features: tuple[int, ...] | None
    threshold: float


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


async def explain(session: Any, x: np.ndarray, target: int, groups: np.ndarray, fraction: float) -> Explanation:
    """First SIS of ``session`` on ``x`` for class ``target`` with ``τ = fraction · f(x)_target``."""
    score = class_score(session, target)
    full = float((await score(x[None]))[0])
    threshold = fraction * full
    result = await find_sis(x, np.zeros_like(x), groups, score, SISParams(threshold=threshold, chunk_size=256))
    features = result.collection[0].features if result.collection else None
    return Explanation(result.status, features, threshold)


async def _sufficient(session: Any, x: np.ndarray, groups: np.ndarray, features: tuple[int, ...],
                      target: int, threshold: float) -> bool:
    masked = subset_input(x, np.zeros_like(x), groups, features)
    return bool((await class_score(session, target)(masked[None]))[0] >= threshold)


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
    d = int(groups.max()) + 1
    targets = run_onnx(dense, x).argmax(axis=1)
    dense_expl = [await explain(dense, xi, int(t), groups, fraction) for xi, t in zip(x, targets, strict=True)]
    results: dict[str, dict[str, Any]] = {}
    for name, session in pruned.items():
        ious: list[float] = []
        d2p: list[bool] = []
        p2d: list[bool] = []
        sizes_d: list[float] = []
        sizes_p: list[float] = []
        for xi, target, de in zip(x, targets, dense_expl, strict=True):
            pe = await explain(session, xi, int(target), groups, fraction)
            if de.features is None or pe.features is None:
                continue
            ious.append(jaccard(de.features, pe.features))
            d2p.append(await _sufficient(session, xi, groups, de.features, int(target), pe.threshold))
            p2d.append(await _sufficient(dense, xi, groups, pe.features, int(target), de.threshold))
            sizes_d.append(len(de.features) / d)
            sizes_p.append(len(pe.features) / d)
        results[name] = {
            "samples": len(x),
            "compared": len(ious),
            "iou": _mean(ious),
            "dense_to_pruned": _mean(d2p),
            "pruned_to_dense": _mean(p2d),
            "dense_sis_size": _mean(sizes_d),
            "pruned_sis_size": _mean(sizes_p),
        }
    return results


def _mean(values: Sequence[float | bool]) -> float | None:
    return float(np.mean(values)) if len(values) else None
