"""Metrics of the evaluation beyond test accuracy (pure numpy, no models).

* :func:`error_rate` — top-1 error;
* :func:`prune_potential` — the largest prune ratio whose error stays within δ of the dense
  model's error on the same data (Liebenwein et al., 2021);
* :func:`excess_error` — how much more the pruned model's error grows from clean to shifted
  data than the dense model's;
* :func:`functional_agreement` — top-1 agreement, softmax total-variation distance and logit
  L2 distance between the dense and a pruned model.

Example:
    >>> prune_potential([0.3, 0.5, 0.9], [0.10, 0.104, 0.2], dense_error=0.10, delta=0.005)
    0.5
    >>> excess_error(pruned_clean=0.02, pruned_shift=0.10, dense_clean=0.02, dense_shift=0.06)
    0.04
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sisguard.prune.errors import PruneError


def error_rate(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose arg-max differs from the label."""
    if len(logits) != len(labels):
        raise PruneError(f"{len(logits)} predictions for {len(labels)} labels")
    return float(np.mean(np.argmax(logits, axis=1) != labels))


def prune_potential(ratios: Sequence[float], errors: Sequence[float], dense_error: float, delta: float) -> float:
    """Largest ratio ``r`` with ``errors[r] ≤ dense_error + delta``; 0.0 when none qualifies.

    ``errors`` and ``delta`` are fractions (δ = 0.5 percentage points is ``0.005``). A tiny
    tolerance absorbs float rounding, so a model identical to the dense one always counts.
    """
    if len(ratios) != len(errors):
        raise PruneError(f"{len(ratios)} ratios for {len(errors)} errors")
    ok = [r for r, e in zip(ratios, errors, strict=True) if e <= dense_error + delta + 1e-12]
    return float(max(ok)) if ok else 0.0


def excess_error(pruned_clean: float, pruned_shift: float, dense_clean: float, dense_shift: float) -> float:
    """``(pruned_shift − pruned_clean) − (dense_shift − dense_clean)``; > 0: pruning hurts more under shift."""
    return round((pruned_shift - pruned_clean) - (dense_shift - dense_clean), 12)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def functional_agreement(dense_logits: np.ndarray, pruned_logits: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, mean softmax total-variation distance, mean and max logit L2 distance."""
    if dense_logits.shape != pruned_logits.shape:
        raise PruneError(f"logit shapes differ: {dense_logits.shape} vs {pruned_logits.shape}")
    p, q = softmax(dense_logits), softmax(pruned_logits)
    l2 = np.linalg.norm(dense_logits.astype(np.float64) - pruned_logits.astype(np.float64), axis=1)
    return {
        "top1_agreement": float(np.mean(p.argmax(axis=1) == q.argmax(axis=1))),
        "softmax_tv": float(np.mean(0.5 * np.abs(p - q).sum(axis=1))),
        "logit_l2_mean": float(np.mean(l2)),
        "logit_l2_max": float(np.max(l2)),
    }
