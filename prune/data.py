"""Datasets for pruning and evaluation.

Three sources, each returned as a :class:`Dataset` of float32 inputs ``[N, C, H, W]`` and
int64 labels:

* :func:`load_digits` — scikit-learn's 8×8 digits, scaled to [0, 1] with a fixed
  stratified 75/25 split (``random_state=0``);
* :func:`load_npz` — any ``.npz`` holding ``x_train, y_train, x_test, y_test``;
* :func:`synthetic32` — a deterministic 3×32×32 task: which coloured shape is drawn,
  placed at a random position on a noisy background.

Example:
    >>> ds = load_digits()
    >>> ds.x_train.shape[1:], ds.num_classes
    ((1, 8, 8), 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sisguard.prune.errors import DataMismatchError, PruneError

#: Names accepted by :func:`load_dataset` besides a path to an ``.npz`` file.
BUILTIN_DATASETS = ("digits", "synthetic32")


@dataclass(frozen=True)
class Dataset:
    """A train/test split of image-like inputs with integer class labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        _check_split(self.name, "train", self.x_train, self.y_train)
        _check_split(self.name, "test", self.x_test, self.y_test)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataMismatchError(
                f"dataset {self.name!r}: x_train has sample shape {self.x_train.shape[1:]} "
                f"but x_test has {self.x_test.shape[1:]}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch axis."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes: one more than the largest label seen."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def value_range(self) -> tuple[float, float]:
        """Minimum and maximum input value of the training set (used to clip shifted data)."""
        return float(self.x_train.min()), float(self.x_train.max())


def _check_split(name: str, split: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim < 2:
        raise DataMismatchError(f"dataset {name!r}: x_{split} must have a batch axis, got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataMismatchError(
            f"dataset {name!r}: y_{split} must be a vector of {len(x)} labels, got shape {y.shape}"
        )
    if len(x) == 0:
        raise DataMismatchError(f"dataset {name!r}: the {split} split is empty")
    if x.dtype != np.float32:
        raise DataMismatchError(f"dataset {name!r}: x_{split} must be float32, got {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise DataMismatchError(f"dataset {name!r}: y_{split} must hold non-negative integer labels")


def load_digits() -> Dataset:
    """scikit-learn digits as ``[N, 1, 8, 8]`` float32 in [0, 1] (pixel values / 16)."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return Dataset("digits", x_train, y_train, x_test, y_test)


def load_npz(path: str | Path) -> Dataset:
    """Load ``x_train, y_train, x_test, y_test`` from an ``.npz`` file (inputs cast to float32)."""
    path = Path(path)
    if not path.is_file():
        raise PruneError(f"dataset file {str(path)!r} does not exist")
    with np.load(path) as archive:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive]
        if missing:
            raise DataMismatchError(f"dataset {str(path)!r} lacks arrays {', '.join(missing)}")
        arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    for key in ("y_train", "y_test"):
        if not np.issubdtype(arrays[key].dtype, np.integer):
            raise DataMismatchError(f"dataset {str(path)!r}: {key} must hold integer labels")
    return Dataset(
        path.stem,
        arrays["x_train"].astype(np.float32),
        arrays["y_train"].astype(np.int64),
        arrays["x_test"].astype(np.float32),
        arrays["y_test"].astype(np.int64),
    )


#: RGB colours of the synthetic shapes; a class is (shape, colour).
_COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 0.4, 1.0]], dtype=np.float32)
_SHAPES = ("square", "disc", "cross", "bar")


def _shape_mask(kind: str, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2.0
    if kind == "square":
        return np.ones((size, size), dtype=bool)
    if kind == "disc":
        return (yy - centre) ** 2 + (xx - centre) ** 2 <= (size / 2.0) ** 2
    if kind == "cross":
        band = np.abs(yy - centre) <= size / 6.0
        return band | (np.abs(xx - centre) <= size / 6.0)
    band = np.abs(yy - centre) <= size / 5.0
    return band


def synthetic32(n: int, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """A deterministic 3×32×32 task with 8 classes: which of 4 shapes in which of 2 colours.

    Each image is a dim noisy background with one shape of side 10–14 pixels drawn at a
    random position; the class is ``shape_index * 2 + colour_index``. The decision depends
    on a small region, so sufficient input subsets are local and meaningful. A small CNN
    learns it to >90% test accuracy in a few epochs.

    Args:
        n: total number of samples (train + test), at least 8.
        seed: seed of the generator; equal seeds give identical data.
        test_fraction: share of the samples held out for testing.
    """
    if n < 8:
        raise PruneError(f"synthetic32 needs n >= 8 samples, got {n}")
    rng = np.random.default_rng(seed)
    num_classes = len(_SHAPES) * len(_COLOURS)
    y = rng.integers(0, num_classes, size=n).astype(np.int64)
    x = (0.15 * rng.random((n, 3, 32, 32))).astype(np.float32)
    for i, label in enumerate(y):
        shape, colour = divmod(int(label), len(_COLOURS))
        size = int(rng.integers(10, 15))
        top, left = (int(v) for v in rng.integers(0, 32 - size + 1, size=2))
        mask = _shape_mask(_SHAPES[shape], size)
        brightness = 0.75 + 0.25 * rng.random()
        patch = x[i, :, top : top + size, left : left + size]
        patch[:, mask] = (brightness * _COLOURS[colour])[:, None]
    n_test = max(1, round(n * test_fraction))
    return Dataset(f"synthetic32-{seed}", x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def load_dataset(spec: str, seed: int = 0, synthetic_n: int = 4000) -> Dataset:
    """Load ``digits``, ``synthetic32`` (``synthetic_n`` samples from ``seed``) or an ``.npz`` path."""
    if spec == "digits":
        return load_digits()
    if spec == "synthetic32":
        return synthetic32(synthetic_n, seed)
    if spec.endswith(".npz") or Path(spec).is_file():
        return load_npz(spec)
    raise PruneError(f"unknown dataset {spec!r}: use one of {', '.join(BUILTIN_DATASETS)} or a path to an .npz")
