"""Shifts: clean is the identity, values stay in range, noise repeats per seed, corruptions do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.prune.errors import PruneError
from sisguard.prune.shifts import Shift, apply_shift, default_shifts, parse_shift

X = np.random.default_rng(0).random((6, 3, 8, 8), dtype=np.float32)


@pytest.mark.parametrize("shift", default_shifts(), ids=lambda s: s.name)
def test_shift_keeps_shape_dtype_and_range(shift: Shift) -> None:
    out = apply_shift(shift, X, (0.0, 1.0), seed=0)
    assert out.shape == X.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, apply_shift(shift, X, (0.0, 1.0), seed=0))
    if shift.kind == "clean":
        np.testing.assert_array_equal(out, X)
    else:
        assert not np.array_equal(out, X)


def test_noise_depends_on_seed() -> None:
    a = apply_shift(Shift("gaussian", 0.1), X, (0.0, 1.0), seed=0)
    b = apply_shift(Shift("gaussian", 0.1), X, (0.0, 1.0), seed=1)
    assert not np.array_equal(a, b)


def test_blur_keeps_constant_images_and_contrast_keeps_means() -> None:
    flat = np.full((2, 1, 8, 8), 0.4, np.float32)
    np.testing.assert_allclose(apply_shift(Shift("blur", 1.0), flat, (0.0, 1.0), 0), flat, atol=1e-6)
    low = apply_shift(Shift("contrast", 0.5), X, (0.0, 1.0), 0)
    np.testing.assert_allclose(low.mean(axis=(1, 2, 3)), X.mean(axis=(1, 2, 3)), atol=1e-5)
    assert low.std() < X.std()


def test_parse_shift() -> None:
    assert parse_shift("gaussian-0.1") == Shift("gaussian", 0.1)
    assert parse_shift("clean").name == "clean"
    with pytest.raises(PruneError, match="unknown shift kind"):
        parse_shift("fog-0.2")
