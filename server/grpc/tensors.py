"""Protobuf tensors to numpy and back. Raw little-endian bytes map to numpy without copies."""

from __future__ import annotations

import math
import sys

import numpy as np

# One table of wire dtypes for client and server (same distribution; the client is always installed).
from sisguard.client._tensors import BY_NUMPY, DTYPES
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.errors import InvalidArgument, ResourceExhausted

# Open Inference Protocol datatype strings.
OIP_DTYPES: dict[str, np.dtype] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "FP16": np.dtype("<f2"),
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "INT16": np.dtype("<i2"),
    "INT8": np.dtype("i1"),
    "UINT8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_OIP_BY_NUMPY = {dt.newbyteorder("="): name for name, dt in OIP_DTYPES.items()}


def native(arr: np.ndarray) -> np.ndarray:
    """Native byte order (a no-op on little-endian hosts)."""
    return arr if sys.byteorder == "little" or arr.dtype.itemsize == 1 else arr.astype(arr.dtype.newbyteorder("="))


def check_shape(shape: list[int], what: str, max_elements: int) -> int:
    """Element count of a shape whose dimensions are all non-negative and within the limit."""
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"{what}: shape {shape} has a negative dimension")
    count = math.prod(shape)  # Python ints: no overflow on absurd shapes
    if count > max_elements:
        raise ResourceExhausted(f"{what}: {count} elements exceed the server limit of {max_elements}")
    return count


def decode(buffer: bytes, dtype: np.dtype, shape: list[int], what: str, max_elements: int) -> np.ndarray:
    count = check_shape(shape, what, max_elements)
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise InvalidArgument(
            f"{what}: {len(buffer)} bytes do not fit shape {shape} of {dtype.newbyteorder('=').name}: "
            f"expected {expected} bytes"
        )
    return native(np.frombuffer(buffer, dtype=dtype).reshape(shape))


def to_numpy(t: pb.Tensor, what: str, max_elements: int) -> np.ndarray:
    """A sisguard.v1.Tensor as a (read-only) numpy array, validated."""
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        names = ", ".join(pb.DataType.Name(c) for c in DTYPES)
        got = pb.DataType.Name(t.dtype) if t.dtype in pb.DataType.values() else str(t.dtype)
        raise InvalidArgument(f"{what}: dtype {got} is not supported; expected one of {names}")
    return decode(t.data, dtype, list(t.shape), what, max_elements)


def dtype_code(dtype: np.dtype) -> int:
    """The wire DataType of a numpy dtype."""
    code = BY_NUMPY.get(dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"no wire dtype for {dtype}")
    return code


def from_numpy(arr: np.ndarray) -> pb.Tensor:
    code = dtype_code(arr.dtype)
    data = np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()
    return pb.Tensor(dtype=code, shape=list(arr.shape), data=data)


def oip_dtype_name(dtype: np.dtype) -> str:
    return _OIP_BY_NUMPY[dtype.newbyteorder("=")]
