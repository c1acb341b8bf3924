"""numpy arrays to ``sisguard.v1.Tensor`` and back: raw little-endian bytes in C order.

Decoding checks before it computes: the rank first, then each dimension on its own, then the
element count against the receiver's limit, and only then the byte length, so no message can
make the receiver multiply huge numbers or allocate in proportion to a dimension it claims.

>>> t = to_tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
>>> from_tensor(t, "x").tolist()
[[0, 1, 2], [3, 4, 5]]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb

from .dtypes import DTYPES, code_of, dtype_of
from .errors import TooLarge, WireError

__all__ = [
    "MAX_DIMS",
    "check_shape",
    "decode",
    "describe_shape",
    "from_tensor",
    "from_values",
    "native",
    "to_tensor",
]

MAX_DIMS = 16  # rank of any tensor a message may carry; the models served take 4 or fewer
_SHOWN_DIMS = 8  # dimensions quoted in a message (a shape can be hundreds of kilobytes)


def native(arr: NDArray[Any]) -> NDArray[Any]:
    """Native byte order (a no-op on little-endian hosts)."""
    return arr if sys.byteorder == "little" or arr.dtype.itemsize == 1 else arr.astype(arr.dtype.newbyteorder("="))


def describe_shape(shape: Sequence[int]) -> str:
    """A shape for an error message, shortened when it is long or holds huge numbers."""

    def dim(d: int) -> str:
        return str(d) if -(10**12) < d < 10**12 else ("-" if d < 0 else "") + "1e12+"

    shown = ", ".join(dim(d) for d in shape[:_SHOWN_DIMS])
    more = f", ... ({len(shape)} dimensions)" if len(shape) > _SHOWN_DIMS else ""
    return f"[{shown}{more}]"


def check_shape(shape: Sequence[int], what: str, max_elements: int | None = None) -> int:
    """Element count of a shape, checked before any arithmetic on it.

    At most :data:`MAX_DIMS` dimensions, each non-negative; with ``max_elements``, every dimension
    on its own (even next to a zero) and then the product are at most that (:class:`TooLarge`; only
    the server sets a limit, its ``max_elements`` setting).
    """
    if len(shape) > MAX_DIMS:
        raise WireError(f"{what}: shape has {len(shape)} dimensions; expected at most {MAX_DIMS}")
    for d in shape:
        if d < 0:
            raise WireError(f"{what}: shape {describe_shape(shape)} has a negative dimension")
        if max_elements is not None and d > max_elements:
            raise TooLarge(
                f"{what}: dimension {describe_shape([d])[1:-1]} in shape {describe_shape(shape)} alone would "
                f"exceed the server limit of {max_elements} elements"
            )
    # Every factor is now bounded and there are at most MAX_DIMS of them: cheap.
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise TooLarge(f"{what}: {count} elements exceed the server limit of {max_elements}")
    return count


def decode(
    buffer: bytes, dtype: np.dtype[Any], shape: Sequence[int], what: str, max_elements: int | None = None
) -> NDArray[Any]:
    """Raw little-endian bytes as a read-only array of ``shape`` (native byte order), checked."""
    count = check_shape(shape, what, max_elements)
    dims = [int(d) for d in shape]  # only now: a repeated field can hold millions of dimensions
    expected = count * dtype.itemsize
    if len(buffer) != expected:
        raise WireError(
            f"{what}: {len(buffer)} bytes do not fit shape {describe_shape(dims)} of "
            f"{dtype.newbyteorder('=').name}: expected {expected} bytes"
        )
    return native(np.frombuffer(buffer, dtype=dtype).reshape(dims))


def from_tensor(t: Any, what: str = "tensor", max_elements: int | None = None, *, copy: bool = False) -> NDArray[Any]:
    """A ``sisguard.v1.Tensor`` as a numpy array (native byte order), validated.

    Without ``copy`` the array is a read-only view of the message's bytes (no copy on
    little-endian hosts); with ``copy`` it is a writable array of its own.
    """
    dtype_of(t.dtype, what)  # an unknown code is refused, naming the dtypes that travel
    arr = decode(t.data, DTYPES[t.dtype], t.shape, what, max_elements)
    return np.array(arr, copy=True) if copy else arr


def to_tensor(arr: Any, what: str = "array") -> Any:
    """A ``sisguard.v1.Tensor`` holding ``arr`` (anything ``np.asarray`` takes of a dtype that travels)."""
    a = np.asarray(arr)
    code = code_of(a.dtype, what)
    data = np.ascontiguousarray(a, dtype=DTYPES[code]).tobytes()
    return pb.Tensor(dtype=code, shape=list(a.shape), data=data)


def from_values(
    values: Sequence[int | float | bool], dtype: np.dtype[Any], shape: list[int], what: str
) -> NDArray[Any]:
    """Typed protobuf contents (e.g. OIP ``int_contents``) as an array of ``dtype``, range-checked.

    Protobuf carries INT8/INT16/UINT8 values in 32-bit fields, so a value can be out of the
    dtype's range; that is the sender's mistake and is said so (numpy would raise OverflowError).
    """
    if np.issubdtype(dtype, np.integer) and len(values):
        info = np.iinfo(dtype)
        wide = np.asarray(values, dtype=np.int64 if info.min < 0 or info.max < 2**63 else np.uint64)
        lo, hi = int(wide.min()), int(wide.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise WireError(
                f"{what}: value {bad} is out of range for {dtype.newbyteorder('=').name}: "
                f"expected values in [{info.min}, {info.max}]"
            )
        return wide.astype(dtype).reshape(shape)
    return np.asarray(values, dtype=dtype).reshape(shape)
