"""Baselines: the values masked features take.

Every builder returns an array of the input's shape and dtype; a masked feature's elements are
set to the baseline's values at those elements.

>>> constant_baseline((2, 2), 0.5, np.float32).tolist()
[[0.5, 0.5], [0.5, 0.5]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

from sisguard.sis.errors import InvalidInput

__all__ = ["constant_baseline", "tensor_baseline", "zero_baseline"]


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if any(s < 1 for s in out):
        raise InvalidInput(f"expected an input shape with positive axes, got {list(out)}")
    return out


def zero_baseline(shape: Sequence[int], dtype: DTypeLike = np.float32) -> np.ndarray:
    """All zeros."""
    return np.zeros(_shape(shape), dtype=dtype)


def constant_baseline(shape: Sequence[int], value: float, dtype: DTypeLike = np.float32) -> np.ndarray:
    """``value`` everywhere; it must be finite."""
    if not np.isfinite(value):
        raise InvalidInput(f"baseline constant must be a finite number, got {value}")
    return np.full(_shape(shape), value, dtype=dtype)


def tensor_baseline(tensor: np.ndarray, shape: Sequence[int], dtype: DTypeLike = np.float32) -> np.ndarray:
    """A given tensor of exactly the input's shape, with finite values, cast to ``dtype``."""
    t = np.asarray(tensor)
    s = _shape(shape)
    if t.shape != s:
        raise InvalidInput(f"baseline tensor has shape {list(t.shape)}, expected the input shape {list(s)}")
    if t.dtype.kind not in "biuf":
        raise InvalidInput(f"baseline tensor must be numeric, got dtype {t.dtype}")
    if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
        raise InvalidInput("baseline tensor must hold finite values, got NaN or infinity")
    return np.array(t, dtype=dtype, copy=True)
