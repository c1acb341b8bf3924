"""Datasets an audit explains: an ``.npz`` file, a folder of images, or a Parquet file.

Every loader returns the inputs already checked against the pair's input shape and dtype, so a
mismatch fails before any model runs, with one message that names the expected shape.

* ``.npz``: the array ``x`` (or the file's only array) of shape ``[N, *input_shape]``; optional
  integer labels ``y`` of shape ``[N]``.
* a folder: every image file (``.png``, ``.jpg``, ...) in name order, read like ``sisguard predict``
  reads images (the pair's ``image.scale``/``image.invert``); labels from a sub-folder name when
  every image sits in a sub-folder named by an integer (``7/a.png``).
* Parquet: a column ``x`` holding one list of ``prod(input_shape)`` numbers per row (C order);
  optional ``y`` (integers) and ``id`` (strings or integers, recorded as the source).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sisguard.audit.errors import AuditError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` ``[N, *input_shape]``, optional labels, and a source name per input."""

    x: np.ndarray
    labels: np.ndarray | None
    sources: list[str]
    fingerprint: str

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _fingerprint(x: np.ndarray, labels: np.ndarray | None, sources: list[str]) -> str:
    h = hashlib.sha256()
    h.update(repr((x.dtype.str, x.shape)).encode())
    h.update(np.ascontiguousarray(x).tobytes())
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update("\0".join(sources).encode())
    return h.hexdigest()


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _check(x: np.ndarray, path: Path, input_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if x.ndim == 0 or tuple(x.shape[1:]) != tuple(input_shape):
        got = _shape_text(tuple(x.shape[1:])) if x.ndim else "a scalar"
        raise AuditError(
            f"dataset {path}: samples have shape {got}, the pair expects {_shape_text(input_shape)} "
            f"(the array must be [N, {', '.join(str(s) for s in input_shape)}])"
        )
    if x.shape[0] == 0:
        raise AuditError(f"dataset {path} holds no samples")
    if x.dtype.kind not in "biuf":
        raise AuditError(f"dataset {path}: samples must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise AuditError(f"dataset {path}: samples must hold finite values, got NaN or infinity")
    return np.ascontiguousarray(x.astype(dtype, copy=False))


def _labels(y: np.ndarray | None, n: int, path: Path) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise AuditError(f"dataset {path}: labels y must be {n} integers, got dtype {y.dtype} shape {list(y.shape)}")
    return y.astype(np.int64)


def _npz(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if "x" in keys:
                key = "x"
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise AuditError(f"dataset {path}: expected an array named x (or exactly one array), has {keys}")
            x = archive[key]
            y = archive["y"] if "y" in keys and key != "y" else None
    except AuditError:
        raise
    except Exception as exc:  # cut short, damaged, not a zip: zipfile, zlib, the .npy header parser fail apart
        raise AuditError(f"dataset {path} is not a readable .npz file: {exc}") from exc
    x = _check(x, path, shape, dtype)
    labels = _labels(y, len(x), path)
    sources = [f"{key}[{i}]" for i in range(len(x))]
    return Dataset(x, labels, sources, _fingerprint(x, labels, sources))


def _folder(path: Path, shape: tuple[int, ...], dtype: np.dtype, scale: float, invert: bool) -> Dataset:
    from sisguard.client._errors import InvalidInput
    from sisguard.client.inputs import image_to_input

    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise AuditError(f"dataset {path}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] not in (1, 3)):
        raise AuditError(
            f"dataset {path}: images cannot become inputs of shape {_shape_text(shape)} "
            "(expected [C, H, W] with C 1 or 3, or [H, W]); use .npz or Parquet"
        )
    try:
        x = np.stack([image_to_input(f, shape, scale=scale, invert=invert) for f in files])
    except InvalidInput as exc:
        raise AuditError(f"dataset {path}: {exc}") from exc
    sources = [f.relative_to(path).as_posix() for f in files]
    parents = [f.parent.name for f in files]
    labels = None
    if all(f.parent != path for f in files) and all(p.isdigit() for p in parents):
        labels = np.array([int(p) for p in parents], dtype=np.int64)
    x = _check(x, path, shape, dtype)
    return Dataset(x, labels, sources, _fingerprint(x, labels, sources))


def _parquet(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> Dataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AuditError(f"dataset {path} is not a readable Parquet file: {exc}") from exc
    if "x" not in table.column_names:
        raise AuditError(
            f"dataset {path}: expected a column x (one list of numbers per sample), has {table.column_names}"
        )
    column = table.column("x").combine_chunks()
    if not (
        pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)
    ):
        raise AuditError(f"dataset {path}: column x must hold one list of numbers per sample, has {column.type}")
    size = int(np.prod(shape))
    lengths = np.asarray(column.value_lengths().fill_null(0))
    bad = np.flatnonzero(lengths != size)
    if bad.size:
        raise AuditError(
            f"dataset {path}: sample {int(bad[0])} has {int(lengths[bad[0]])} values, the pair expects "
            f"{size} (input shape {_shape_text(shape)}, C order)"
        )
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
    x = _check(values.reshape(len(column), *shape), path, shape, dtype)
    y = np.asarray(table.column("y").to_numpy()) if "y" in table.column_names else None
    labels = _labels(y, len(x), path)
    if "id" in table.column_names:
        sources = [str(v) for v in table.column("id").to_pylist()]
    else:
        sources = [f"row {i}" for i in range(len(x))]
    return Dataset(x, labels, sources, _fingerprint(x, labels, sources))


def load_dataset(
    path: Path,
    input_shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    image_scale: float = 1.0 / 255.0,
    image_invert: bool = False,
    limit: int | None = None,
) -> Dataset:
    """The dataset at ``path``, checked against ``input_shape``; the first ``limit`` inputs when given."""
    if path.is_dir():
        data = _folder(path, input_shape, dtype, image_scale, image_invert)
    elif not path.is_file():
        raise AuditError(f"dataset {path} does not exist")
    elif path.suffix.lower() == ".npz":
        data = _npz(path, input_shape, dtype)
    elif path.suffix.lower() in (".parquet", ".pq"):
        data = _parquet(path, input_shape, dtype)
    else:
        raise AuditError(f"dataset {path}: expected a .npz file, a .parquet file or a folder of images")
    if limit is not None and limit < len(data):
        x, sources = data.x[:limit], data.sources[:limit]
        labels = None if data.labels is None else data.labels[:limit]
        data = Dataset(x, labels, sources, _fingerprint(x, labels, sources))
    return data
