"""Feature group maps: which input elements form one SIS feature.

A group map is an ``int32`` array of the input's shape; the value ``g`` at an element says that
the element belongs to feature ``g``. Features are numbered ``0..d-1`` and none is empty. Masking
feature ``g`` sets all of its elements to the baseline (see :mod:`.baselines`).

>>> pixel_groups((3, 2, 2))[0].tolist()
[[0, 1], [2, 3]]
>>> patch_groups((5, 5), 2, 2)[4].tolist()
[6, 6, 7, 7, 8]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sisguard.sis.errors import InvalidInput

__all__ = [
    "element_groups",
    "explicit_groups",
    "feature_mask",
    "num_features",
    "patch_groups",
    "pixel_groups",
    "subset_input",
    "validate_groups",
]

_INT32_MAX = int(np.iinfo(np.int32).max)


def _shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InvalidInput(f"expected an input shape as a sequence of integers, got {shape!r}") from None
    if not out or any(s < 1 for s in out):
        raise InvalidInput(f"expected an input shape with at least one axis, all positive, got {out}")
    return out


def _cap(groups: np.ndarray, max_features: int | None) -> np.ndarray:
    if max_features is not None:
        d = num_features(groups)
        if d > max_features:
            raise InvalidInput(f"input has {d} features, the server allows at most {max_features}")
    return groups


def num_features(groups: np.ndarray) -> int:
    """Number of features ``d`` of a valid group map (its largest value plus one)."""
    return int(groups.max()) + 1 if groups.size else 0


def element_groups(shape: Sequence[int], *, max_features: int | None = None) -> np.ndarray:
    """One feature per input element, numbered in C order."""
    s = _shape(shape)
    return _cap(np.arange(int(np.prod(s)), dtype=np.int32).reshape(s), max_features)


def pixel_groups(shape: Sequence[int], *, max_features: int | None = None) -> np.ndarray:
    """One feature per spatial position across channels.

    ``[C, H, W]`` inputs: feature ``h * W + w`` for every channel. ``[H, W]`` inputs: one feature
    per element.
    """
    s = _shape(shape)
    if len(s) == 2:
        return element_groups(s, max_features=max_features)
    if len(s) != 3:
        raise InvalidInput(f"pixel features need an input of shape [C, H, W] or [H, W], got {list(s)}")
    c, h, w = s
    plane = np.arange(h * w, dtype=np.int32).reshape(h, w)
    return _cap(np.ascontiguousarray(np.broadcast_to(plane, (c, h, w))), max_features)


def patch_groups(shape: Sequence[int], ph: int, pw: int, *, max_features: int | None = None) -> np.ndarray:
    """Patches of ``ph x pw`` pixels over the last two axes (``[H, W]`` or ``[C, H, W]``).

    Patches are numbered row-major; the last row and column of patches are smaller when ``ph`` or
    ``pw`` does not divide ``H`` or ``W``. In ``[C, H, W]`` inputs a patch spans every channel.
    """
    s = _shape(shape)
    if len(s) not in (2, 3):
        raise InvalidInput(f"patch features need an input of shape [C, H, W] or [H, W], got {list(s)}")
    if int(ph) < 1 or int(pw) < 1:
        raise InvalidInput(f"patch size must be at least 1x1, got {ph}x{pw}")
    h, w = s[-2:]
    cols = -(-w // int(pw))
    plane = (np.arange(h)[:, None] // int(ph)) * cols + np.arange(w)[None, :] // int(pw)
    return _cap(np.ascontiguousarray(np.broadcast_to(plane.astype(np.int32), s)), max_features)


def validate_groups(groups: np.ndarray, shape: Sequence[int]) -> int:
    """Check a group map against an input shape; return the number of features ``d``.

    Raises :class:`InvalidInput` unless ``groups`` is an integer array of exactly ``shape``
    whose values are ``0..d-1`` with every feature non-empty.
    """
    g = np.asarray(groups)
    s = _shape(shape)
    if g.dtype == np.bool_ or not np.issubdtype(g.dtype, np.integer):
        raise InvalidInput(f"group map must hold integers, got dtype {g.dtype}")
    if g.shape != s:
        raise InvalidInput(f"group map has shape {list(g.shape)}, expected the input shape {list(s)}")
    _check_values(g)
    return num_features(g)


def _check_values(g: np.ndarray, max_features: int | None = None) -> None:
    """Values ``0..d-1`` with every feature used. The largest value is checked against what the
    map can hold (``d`` cannot exceed its element count) and against ``max_features`` *before*
    the per-feature counts are allocated: one large id must not cost memory in proportion to it."""
    lo, hi = int(g.min()), int(g.max())
    if lo < 0:
        raise InvalidInput(f"group map values must be non-negative feature indices, got minimum {lo}")
    if hi > _INT32_MAX:
        raise InvalidInput(f"group map values must fit in int32, got maximum {hi}")
    if max_features is not None and hi >= max_features:
        raise InvalidInput(f"input has {hi + 1} features, the server allows at most {max_features}")
    if hi >= g.size:
        raise InvalidInput(
            f"group map values must be exactly 0..d-1 with every feature used; got a value of {hi} "
            f"in a map of only {g.size} elements"
        )
    counts = np.bincount(g.ravel().astype(np.int64), minlength=hi + 1)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise InvalidInput(
            f"group map values must be exactly 0..d-1 with every feature used; got values up to {hi} "
            f"with {missing.size} missing (first missing: {int(missing[0])})"
        )


def explicit_groups(group_map: np.ndarray, shape: Sequence[int], max_features: int | None = None) -> np.ndarray:
    """Validate a caller's group map and broadcast it to the input shape.

    The map must hold integers, be broadcastable to ``shape`` (e.g. an ``[H, W]`` map for a
    ``[C, H, W]`` input), and use exactly the values ``0..d-1``.

    >>> explicit_groups(np.array([[0, 0], [1, 2]]), (3, 2, 2)).shape
    (3, 2, 2)
    """
    g = np.asarray(group_map)
    s = _shape(shape)
    if g.dtype == np.bool_ or not np.issubdtype(g.dtype, np.integer):
        raise InvalidInput(f"group map must hold integers, got dtype {g.dtype}")
    if g.size == 0:
        raise InvalidInput(f"group map is empty (shape {list(g.shape)}), expected one broadcastable to {list(s)}")
    try:
        full = np.broadcast_to(g, s)
    except ValueError:
        raise InvalidInput(
            f"group map has shape {list(g.shape)}, expected a shape broadcastable to the input shape {list(s)}"
        ) from None
    _check_values(g, max_features)
    return _cap(np.ascontiguousarray(full, dtype=np.int32), max_features)


def _feature_array(features: Iterable[int], d: int) -> np.ndarray:
    f = np.fromiter((int(v) for v in features), dtype=np.int64)
    if f.size and (f.min() < 0 or f.max() >= d):
        bad = int(f[(f < 0) | (f >= d)][0])
        raise InvalidInput(f"feature {bad} does not exist; features are 0..{d - 1}")
    return f


def feature_mask(groups: np.ndarray, features: Iterable[int]) -> np.ndarray:
    """Boolean mask of the input's shape: true where an element belongs to one of ``features``."""
    g = np.asarray(groups)
    f = _feature_array(features, num_features(g))
    selected = np.zeros(num_features(g), dtype=bool)
    selected[f] = True
    mask: np.ndarray = selected[g]
    return mask


def subset_input(x: np.ndarray, baseline: np.ndarray, groups: np.ndarray, features: Iterable[int]) -> np.ndarray:
    """``x`` with only ``features`` present and every other element at the baseline (dtype of ``x``)."""
    xa = np.asarray(x)
    b = np.asarray(baseline)
    if b.shape != xa.shape or np.shape(groups) != xa.shape:
        raise InvalidInput(
            f"input, baseline and group map must share one shape, got {list(xa.shape)}, "
            f"{list(b.shape)} and {list(np.shape(groups))}"
        )
    return np.where(feature_mask(groups, features), xa, b).astype(xa.dtype, copy=False)
