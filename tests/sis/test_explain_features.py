"""Feature group builders, their validation messages, subset helpers and baselines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from sisguard.sis import (
    constant_baseline,
    element_groups,
    explicit_groups,
    feature_mask,
    num_features,
    patch_groups,
    pixel_groups,
    subset_input,
    tensor_baseline,
    validate_groups,
    zero_baseline,
)
from sisguard.sis.errors import InvalidInput


def test_element_groups() -> None:
    g = element_groups((2, 3))
    assert g.dtype == np.int32
    assert g.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert num_features(g) == 6


def test_pixel_groups_share_a_feature_across_channels() -> None:
    g = pixel_groups((3, 2, 4))
    assert g.shape == (3, 2, 4) and g.dtype == np.int32
    for c in range(3):
        assert g[c].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert pixel_groups((2, 2)).tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize("shape", [(5,), (1, 2, 3, 4)])
def test_pixel_groups_need_two_or_three_axes(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput) as err:
        pixel_groups(shape)
    assert str(err.value) == f"pixel features need an input of shape [C, H, W] or [H, W], got {list(shape)}"


def test_patch_groups_ragged_edges_row_major() -> None:
    assert patch_groups((5, 5), 2, 2).tolist() == [
        [0, 0, 1, 1, 2],
        [0, 0, 1, 1, 2],
        [3, 3, 4, 4, 5],
        [3, 3, 4, 4, 5],
        [6, 6, 7, 7, 8],
    ]
    g = patch_groups((2, 4, 6), 2, 3)
    assert g[0].tolist() == g[1].tolist() == [[0, 0, 0, 1, 1, 1]] * 2 + [[2, 2, 2, 3, 3, 3]] * 2
    assert num_features(patch_groups((3, 28, 28), 4, 4)) == 49
    assert num_features(patch_groups((4, 4), 10, 10)) == 1


def test_patch_groups_validation() -> None:
    with pytest.raises(InvalidInput, match=r"patch size must be at least 1x1, got 0x2"):
        patch_groups((4, 4), 0, 2)
    with pytest.raises(InvalidInput, match=r"patch features need an input of shape \[C, H, W\] or \[H, W\]"):
        patch_groups((4,), 2, 2)


def test_explicit_groups_broadcast_over_channels() -> None:
    g = explicit_groups(np.array([[0, 0], [2, 1]], dtype=np.int64), (3, 2, 2))
    assert g.shape == (3, 2, 2) and g.dtype == np.int32 and g.flags.c_contiguous
    assert all(g[c].tolist() == [[0, 0], [2, 1]] for c in range(3))


@pytest.mark.parametrize(
    ("group_map", "message"),
    [
        (np.array([0.0, 1.0]), "group map must hold integers, got dtype float64"),
        (np.array([True, False]), "group map must hold integers, got dtype bool"),
        (np.array([0, 1, 2]), "group map has shape [3], expected a shape broadcastable to the input shape [2, 2]"),
        (np.zeros((0,), dtype=np.int32), "group map is empty (shape [0]), expected one broadcastable to [2, 2]"),
        (np.array([[0, -1], [1, 2]]), "group map values must be non-negative feature indices, got minimum -1"),
        (
            np.array([[0, 3], [3, 1]]),
            "group map values must be exactly 0..d-1 with every feature used; "
            "got values up to 3 with 1 missing (first missing: 2)",
        ),
    ],
)
def test_explicit_groups_validation_messages(group_map: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        explicit_groups(group_map, (2, 2))
    assert str(err.value) == message


@pytest.mark.parametrize(
    "build",
    [
        lambda: element_groups((4, 4), max_features=10),
        lambda: pixel_groups((3, 4, 4), max_features=10),
        lambda: patch_groups((8, 8), 2, 2, max_features=10),
        lambda: explicit_groups(np.arange(16).reshape(4, 4), (4, 4), max_features=10),
    ],
)
def test_feature_cap(build: Callable[[], np.ndarray]) -> None:
    with pytest.raises(InvalidInput) as err:
        build()
    assert str(err.value) == "input has 16 features, the server allows at most 10"


def test_feature_cap_allows_exactly_the_limit() -> None:
    assert num_features(element_groups((4, 4), max_features=16)) == 16


def test_validate_groups() -> None:
    assert validate_groups(patch_groups((4, 4), 2, 2), (4, 4)) == 4
    with pytest.raises(InvalidInput, match=r"group map has shape \[4, 4\], expected the input shape \[16\]"):
        validate_groups(element_groups((4, 4)), (16,))
    with pytest.raises(InvalidInput, match="must hold integers"):
        validate_groups(np.zeros((2,)), (2,))


def test_feature_mask_and_subset_input() -> None:
    groups = patch_groups((4, 4), 2, 2)
    mask = feature_mask(groups, [1, 2])
    assert mask.dtype == np.bool_ and mask.shape == (4, 4)
    assert mask.sum() == 8 and mask[0, 2] and mask[2, 0] and not mask[0, 0] and not mask[3, 3]
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    baseline = np.full((4, 4), -1.0, dtype=np.float32)
    z = subset_input(x, baseline, groups, [3])
    assert z.dtype == np.float32
    assert z.tolist() == [[-1, -1, -1, -1], [-1, -1, -1, -1], [-1, -1, 10, 11], [-1, -1, 14, 15]]
    assert np.array_equal(subset_input(x, baseline, groups, []), baseline)
    assert np.array_equal(subset_input(x, baseline, groups, range(4)), x)
    with pytest.raises(InvalidInput, match=r"feature 4 does not exist; features are 0\.\.3"):
        feature_mask(groups, [0, 4])


def test_baselines() -> None:
    assert zero_baseline((2, 3)).dtype == np.float32
    assert zero_baseline((2, 3), np.float64).sum() == 0
    assert constant_baseline((2,), 0.25).tolist() == [0.25, 0.25]
    t = np.arange(6.0).reshape(2, 3)
    b = tensor_baseline(t, (2, 3))
    assert b.dtype == np.float32 and b.tolist() == t.tolist()
    t[0, 0] = 99  # the baseline is a copy
    assert b[0, 0] == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: constant_baseline((2,), float("nan")), "baseline constant must be a finite number, got nan"),
        (
            lambda: tensor_baseline(np.zeros((3, 2)), (2, 3)),
            "baseline tensor has shape [3, 2], expected the input shape [2, 3]",
        ),
        (
            lambda: tensor_baseline(np.array([0.0, np.inf]), (2,)),
            "baseline tensor must hold finite values, got NaN or infinity",
        ),
        (lambda: tensor_baseline(np.array(["a", "b"]), (2,)), "baseline tensor must be numeric, got dtype <U1"),
    ],
)
def test_baseline_validation(build: Callable[[], np.ndarray], message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        build()
    assert str(err.value) == message
