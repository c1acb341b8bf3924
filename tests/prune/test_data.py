"""Data sets: digits split and scaling, npz loading and its errors, the synthetic 32×32 task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sisguard.prune.data import load_dataset, load_npz, synthetic32
from sisguard.prune.errors import DataMismatchError, PruneError


def test_digits_shapes_range_and_stratified_split(digits) -> None:
    assert digits.x_train.shape == (1347, 1, 8, 8)
    assert digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == np.float32
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0
    assert digits.num_classes == 10
    counts = np.bincount(digits.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified: about 45 per class


def test_synthetic32_is_deterministic_and_balanced() -> None:
    a, b, c = synthetic32(200, seed=3), synthetic32(200, seed=3), synthetic32(200, seed=4)
    assert a.x_train.shape[1:] == (3, 32, 32)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.num_classes == 8
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0


def test_npz_round_trip(tmp_path: Path, digits) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x_train=digits.x_train[:50], y_train=digits.y_train[:50],
             x_test=digits.x_test[:20], y_test=digits.y_test[:20])
    ds = load_dataset(str(path))
    assert ds.input_shape == (1, 8, 8)
    assert len(ds.x_test) == 20


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 3), np.float32), "y_train": np.zeros(4, np.int64)}, "lacks arrays"),
        ({"x_train": np.zeros((4, 3), np.float32), "y_train": np.zeros(3, np.int64),
          "x_test": np.zeros((2, 3), np.float32), "y_test": np.zeros(2, np.int64)}, "vector of 4 labels"),
        ({"x_train": np.zeros((4, 3), np.float32), "y_train": np.zeros(4, np.int64),
          "x_test": np.zeros((2, 5), np.float32), "y_test": np.zeros(2, np.int64)}, "sample shape"),
        ({"x_train": np.zeros((4, 3), np.float32), "y_train": np.zeros(4, np.float32),
          "x_test": np.zeros((2, 3), np.float32), "y_test": np.zeros(2, np.int64)}, "integer labels"),
    ],
)
def test_bad_npz_is_rejected(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataMismatchError, match=message):
        load_npz(path)


def test_unknown_dataset_name() -> None:
    with pytest.raises(PruneError, match="unknown dataset"):
        load_dataset("imagenet")


@pytest.mark.slow  # trains a CNN for about two minutes on two cores
def test_synthetic32_has_a_real_decision_a_small_cnn_learns() -> None:
    import torch

    from sisguard.prune.models import resnet_cifar
    from sisguard.prune.train import TrainConfig, accuracy, train

    torch.manual_seed(0)
    ds = synthetic32(1600, seed=0)
    net = resnet_cifar(num_classes=ds.num_classes, width=8)
    train(net, ds, TrainConfig(epochs=6, lr=3e-3), seed=0)
    assert accuracy(net, ds.x_test, ds.y_test) > 0.9
