"""numpy arrays to ``sisguard.v1.Tensor`` and back: raw little-endian bytes in C order."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb

from ._errors import InvalidInput

DTYPES: dict[int, np.dtype[Any]] = {
    pb.FLOAT32: np.dtype("<f4"),
    pb.FLOAT64: np.dtype("<f8"),
    pb.FLOAT16: np.dtype("<f2"),
    pb.INT64: np.dtype("<i8"),
    pb.INT32: np.dtype("<i4"),
    pb.INT16: np.dtype("<i2"),
    pb.INT8: np.dtype("i1"),
    pb.UINT8: np.dtype("u1"),
    pb.BOOL: np.dtype("?"),
}
BY_NUMPY: dict[np.dtype[Any], int] = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}


def dtype_of(code: int) -> np.dtype[Any]:
    """The numpy dtype (native byte order) of a wire dtype code."""
    try:
        return DTYPES[code].newbyteorder("=")
    except KeyError:
        raise InvalidInput(f"unknown tensor dtype code {code}") from None


def to_tensor(arr: NDArray[Any]) -> Any:
    """A ``sisguard.v1.Tensor`` holding ``arr``."""
    a = np.asarray(arr)
    code = BY_NUMPY.get(a.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(sorted(str(d.newbyteorder("=")) for d in DTYPES.values()))
        raise InvalidInput(f"arrays of dtype {a.dtype} cannot be sent; use one of {supported}")
    data = np.ascontiguousarray(a, dtype=DTYPES[code]).tobytes()
    return pb.Tensor(dtype=code, shape=list(a.shape), data=data)


def from_tensor(t: Any) -> NDArray[Any]:
    """A writable numpy array (native byte order) from a ``sisguard.v1.Tensor``."""
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        raise InvalidInput(f"the server sent a tensor of unknown dtype code {t.dtype}")
    shape = [int(s) for s in t.shape]
    if len(t.data) != math.prod(shape) * dtype.itemsize:
        raise InvalidInput(f"the server sent {len(t.data)} bytes for a tensor of shape {shape} and dtype {dtype}")
    return np.frombuffer(t.data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=True)
