"""Protobuf tensors to numpy and back. Raw little-endian bytes map to numpy without copies."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.errors import InvalidArgument, ResourceExhausted

# One table of wire dtypes for client and server: the shared codec.
from sisguard.wire.dtypes import BY_NUMPY, DTYPES

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


MAX_DIMS = 16  # rank of any tensor a request may carry; the models served take 4 or fewer
_SHOWN_DIMS = 8  # dimensions quoted in a message (a shape can be hundreds of kilobytes)


def describe_shape(shape: Sequence[int]) -> str:
    """A shape for an error message, shortened when it is long or holds huge numbers."""

    def dim(d: int) -> str:
        return str(d) if -(10**12) < d < 10**12 else ("-" if d < 0 else "") + "1e12+"

    shown = ", ".join(dim(d) for d in shape[:_SHOWN_DIMS])
    more = f", ... ({len(shape)} dimensions)" if len(shape) > _SHOWN_DIMS else ""
    return f"[{shown}{more}]"


def check_shape(shape: Sequence[int], what: str, max_elements: int) -> int:
    """Element count of a shape, checked before any arithmetic on it.

    The rank is bounded first, then every dimension on its own (non-negative and at most
    ``max_elements``, even next to a zero), and only then the product, so no request can make
    the server multiply huge numbers or build an array numpy cannot index.
    """
    if len(shape) > MAX_DIMS:
        raise InvalidArgument(f"{what}: shape has {len(shape)} dimensions; expected at most {MAX_DIMS}")
    for d in shape:
        if d < 0:
            raise InvalidArgument(f"{what}: shape {describe_shape(shape)} has a negative dimension")
        if d > max_elements:
            raise ResourceExhausted(
                f"{what}: dimension {describe_shape([d])[1:-1]} in shape {describe_shape(shape)} alone would "
                f"exceed the server limit of {max_elements} elements"
            )
    # Every factor is now at most max_elements and there are at most MAX_DIMS of them: cheap.
    count = math.prod(shape)
    if count > max_elements:
        raise ResourceExhausted(f"{what}: {count} elements exceed the server limit of {max_elements}")
    return count


def decode(buffer: bytes, dtype: np.dtype, shape: Sequence[int], what: str, max_elements: int) -> np.ndarray:
    count = check_shape(shape, what, max_elements)
    shape = list(shape)  # only now: a repeated field can hold millions of dimensions
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise InvalidArgument(
            f"{what}: {len(buffer)} bytes do not fit shape {describe_shape(shape)} of {dtype.newbyteorder('=').name}: "
            f"expected {expected} bytes"
        )
    return native(np.frombuffer(buffer, dtype=dtype).reshape(shape))


def from_values(values: Sequence[int | float | bool], dtype: np.dtype, shape: list[int], what: str) -> np.ndarray:
    """Typed protobuf contents (e.g. OIP ``int_contents``) as an array of ``dtype``, range-checked.

    Protobuf carries INT8/INT16/UINT8 values in 32-bit fields, so a value can be out of the
    dtype's range; that is the caller's mistake and is said so (numpy would raise OverflowError).
    """
    if np.issubdtype(dtype, np.integer) and len(values):
        info = np.iinfo(dtype)
        wide = np.asarray(values, dtype=np.int64 if info.min < 0 or info.max < 2**63 else np.uint64)
        lo, hi = int(wide.min()), int(wide.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise InvalidArgument(
                f"{what}: value {bad} is out of range for {dtype.newbyteorder('=').name}: "
                f"expected values in [{info.min}, {info.max}]"
            )
        return wide.astype(dtype).reshape(shape)
    return np.asarray(values, dtype=dtype).reshape(shape)


def to_numpy(t: pb.Tensor, what: str, max_elements: int) -> np.ndarray:
    """A sisguard.v1.Tensor as a (read-only) numpy array, validated."""
    dtype = DTYPES.get(t.dtype)
    if dtype is None:
        names = ", ".join(pb.DataType.Name(c) for c in DTYPES)
        got = pb.DataType.Name(t.dtype) if t.dtype in pb.DataType.values() else str(t.dtype)
        raise InvalidArgument(f"{what}: dtype {got} is not supported; expected one of {names}")
    return decode(t.data, dtype, t.shape, what, max_elements)


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
