"""Dataset loaders: the same inputs from .npz, Parquet and an image folder; mismatches refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sisguard.audit.dataset import load_dataset
from sisguard.audit.errors import AuditError

SHAPE = (1, 8, 8)
F32 = np.dtype(np.float32)


def test_npz_and_parquet_give_the_same_inputs(digits_npz: Path, tmp_path: Path) -> None:
    a = load_dataset(digits_npz, SHAPE, F32)
    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"x": [row.ravel().tolist() for row in a.x], "y": a.labels, "id": [f"s{i}" for i in range(len(a))]}),
        path,
    )
    b = load_dataset(path, SHAPE, F32)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.sources[0] == "s0"
    assert load_dataset(path, SHAPE, F32, limit=2).x.shape == (2, *SHAPE)


def test_parquet_row_of_the_wrong_length_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [[0.0] * 64, [0.0] * 63]}), path)
    with pytest.raises(AuditError, match="sample 1 has 63 values, the pair expects 64"):
        load_dataset(path, SHAPE, F32)


def test_image_folder_with_label_subfolders(digits_npz: Path, tmp_path: Path) -> None:
    from PIL import Image

    data = load_dataset(digits_npz, SHAPE, F32)
    root = tmp_path / "images"
    for i, (x, y) in enumerate(zip(data.x, data.labels, strict=True)):
        (root / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(x[0] * 255).astype(np.uint8)).save(root / str(y) / f"{i:03d}.png")
    images = load_dataset(root, SHAPE, F32)
    assert images.x.shape == (len(data), *SHAPE)
    assert sorted(images.labels.tolist()) == sorted(data.labels.tolist())
    by_name = {s: k for k, s in enumerate(images.sources)}
    k = by_name[f"{data.labels[0]}/000.png"]
    np.testing.assert_allclose(images.x[k], data.x[0], atol=1 / 255)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 8, 8), np.float32)}, r"shape \[8, 8\], the pair expects \[1, 8, 8\]"),
        ({"x": np.zeros((0, 1, 8, 8), np.float32)}, "holds no samples"),
        ({"x": np.full((2, 1, 8, 8), np.nan, np.float32)}, "finite"),
        ({"a": np.zeros((2, 1, 8, 8)), "b": np.zeros(2)}, "expected an array named x"),
        ({"x": np.zeros((2, 1, 8, 8), np.float32), "y": np.zeros(3, np.int64)}, "labels y must be 2 integers"),
    ],
)
def test_bad_npz_is_refused_with_what_was_expected(tmp_path: Path, arrays: dict, message: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(AuditError, match=message):
        load_dataset(path, SHAPE, F32)


def test_unknown_file_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("1,2\n")
    with pytest.raises(AuditError, match=r"expected a \.npz file, a \.parquet file or a folder"):
        load_dataset(path, SHAPE, F32)
