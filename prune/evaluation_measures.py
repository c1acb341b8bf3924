"""Measures of the evaluation beyond test accuracy (pure numpy, no models): what `sisguard evaluate` reports.

* :func:`error_rate` — top-1 error;
* :func:`prune_potential` — the largest prune ratio up to which *every* evaluated ratio keeps
  its error within δ of the dense model's error on the same data (Liebenwein et al., 2021);
* :func:`mean_interval` — mean, min/max and Student-t interval of a few values (e.g. one
  prune potential per training seed);
* :func:`excess_error` — how much more the pruned model's error grows from clean to shifted
  data than the dense model's;
* :func:`functional_agreement` — top-1 agreement, softmax total-variation distance and logit
  L2 distance between the dense and a pruned model.

Example:
    >>> prune_potential([0.3, 0.5, 0.9], [0.10, 0.104, 0.2], dense_error=0.10, delta=0.005)
    0.5
    >>> prune_potential([0.3, 0.7, 0.95], [0.10, 0.2, 0.10], dense_error=0.10, delta=0.005)  # 0.7 fails
    0.3
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
    """Largest ratio ``r`` such that every evaluated ratio ``≤ r`` has error ``≤ dense_error + delta``.

    Monotone: a ratio that qualifies above a failing one does not count (a collapsed model can
    beat the dense one on a shift by chance); 0.0 when the smallest ratio already fails. Where a
    ratio appears more than once, all its models must qualify. ``errors`` and ``delta`` are
    fractions (δ = 0.5 percentage points is ``0.005``). A tiny tolerance absorbs float rounding,
    so a model identical to the dense one always counts.
    """
    if len(ratios) != len(errors):
        raise PruneError(f"{len(ratios)} ratios for {len(errors)} errors")
    if delta < 0:
        raise PruneError(f"delta must be >= 0, got {delta}")
    worst: dict[float, float] = {}
    for ratio, error in zip(ratios, errors, strict=True):
        worst[float(ratio)] = max(worst.get(float(ratio), error), error)
    potential = 0.0
    for ratio in sorted(worst):
        if worst[ratio] > dense_error + delta + 1e-12:
            break
        potential = ratio
    return potential


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``min``, ``max``, sample ``std`` and a two-sided Student-t interval of the mean.

    The interval (``t_low``, ``t_high``) needs at least two values; with one it is ``None``. Used
    for prune potentials over training seeds, where three seeds give a wide interval on purpose.
    """
    if not values:
        raise PruneError("mean_interval needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise PruneError(f"confidence must lie in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean())
    out: dict[str, float | int | None] = {"n": n, "mean": mean, "min": float(x.min()), "max": float(x.max()),
                                           "std": None, "t_low": None, "t_high": None, "confidence": confidence}
    if n >= 2:
        from scipy.stats import t as student_t

        std = float(x.std(ddof=1))
        half = float(student_t.ppf(0.5 + confidence / 2.0, n - 1)) * std / np.sqrt(n)
        out.update(std=std, t_low=mean - half, t_high=mean + half)
    return out


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
