"""Shifted copies of one input for the shift probes (numpy only; the same definitions as the
toolkit's ``sisguard.prune.shifts``, so that a probe measures the shift the ground truth uses).

Levels are fractions of the input's value range ``[lo, hi]``; results are clipped to it when a
range is configured:

* ``uniform`` — add U(−level, level)·span; ``gaussian`` — add N(0, level²)·span (fresh draws per copy);
* ``brightness`` — add level·span; ``contrast`` — scale deviations from the input's mean by level;
* ``blur`` — Gaussian blur with σ = level pixels over the last two axes (inputs with two spatial axes).

>>> import numpy as np
>>> x = np.full((1, 4, 4), 0.5, np.float32)
>>> float(shifted_copies(x, "brightness", 0.2, 1, (0.0, 1.0), np.random.default_rng(0)).max())
0.7
"""

from __future__ import annotations

import numpy as np


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(2 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes (edge padding), float64."""
    if x.ndim < 2:
        raise ValueError(f"blur needs two spatial axes, got shape {list(x.shape)}")
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    out = np.asarray(x, dtype=np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(kernel):
            acc += w * np.take(padded, np.arange(i, i + size), axis=axis)
        out = acc
    return out


def shift_applies(kind: str, shape: tuple[int, ...]) -> bool:
    """Blur needs two spatial axes of at least 2 elements; the other shifts apply to any input."""
    return kind != "blur" or (len(shape) >= 2 and shape[-1] > 1 and shape[-2] > 1)


def shifted_copies(
    x: np.ndarray,
    kind: str,
    level: float,
    copies: int,
    value_range: tuple[float, float] | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[copies, *x.shape]`` shifted copies of one input ``x`` in ``x``'s dtype."""
    lo, hi = value_range if value_range is not None else (0.0, 1.0)
    span = hi - lo
    base = np.asarray(x, dtype=np.float64)[None]
    if kind == "uniform":
        out = base + rng.uniform(-level, level, size=(copies, *x.shape)) * span
    elif kind == "gaussian":
        out = base + rng.normal(0.0, level, size=(copies, *x.shape)) * span
    elif kind == "brightness":
        out = np.repeat(base + level * span, copies, axis=0)
    elif kind == "contrast":
        mean = base.mean()
        out = np.repeat(mean + level * (base - mean), copies, axis=0)
    elif kind == "blur":
        out = np.repeat(blur(base, level), copies, axis=0)
    else:
        raise ValueError(f"unknown shift kind {kind!r}")
    if value_range is not None:
        out = np.clip(out, lo, hi)
    return out.astype(x.dtype, copy=False)
