"""Tensor element types: wire ``DataType`` codes and Open Inference Protocol names, both to numpy.

Every table maps to a *little-endian* numpy dtype (the byte order on the wire); the lookups
below return dtypes in the host's native order, which is what arrays are compared with.

>>> dtype_of(pb.FLOAT32), code_of(np.dtype("int64")), oip_name(np.dtype("uint8"))
(dtype('float32'), 4, 'UINT8')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb

from .errors import WireError

__all__ = ["BY_NUMPY", "DTYPES", "OIP_DTYPES", "code_of", "dtype_of", "oip_dtype", "oip_name"]

#: ``sisguard.v1.DataType`` code -> little-endian numpy dtype
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

#: Open Inference Protocol datatype name -> little-endian numpy dtype (the same nine types)
OIP_DTYPES: dict[str, np.dtype[Any]] = {
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

#: numpy dtype (native byte order) -> wire code
BY_NUMPY: dict[np.dtype[Any], int] = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
_OIP_BY_NUMPY: dict[np.dtype[Any], str] = {dt.newbyteorder("="): name for name, dt in OIP_DTYPES.items()}


def _code_name(code: int) -> str:
    return pb.DataType.Name(code) if code in pb.DataType.values() else str(code)


def supported() -> str:
    """The numpy dtypes that travel, for messages: ``bool, float16, ...``."""
    return ", ".join(sorted(str(dt.newbyteorder("=")) for dt in DTYPES.values()))


def dtype_of(code: int, what: str = "tensor") -> np.dtype[Any]:
    """The numpy dtype (native byte order) of a wire ``DataType`` code."""
    dt = DTYPES.get(code)
    if dt is None:
        names = ", ".join(pb.DataType.Name(c) for c in DTYPES)
        raise WireError(f"{what}: dtype {_code_name(code)} is not supported; expected one of {names}")
    return dt.newbyteorder("=")


def code_of(dtype: np.dtype[Any], what: str = "array") -> int:
    """The wire ``DataType`` code of a numpy dtype (either byte order)."""
    code = BY_NUMPY.get(np.dtype(dtype).newbyteorder("="))
    if code is None:
        raise WireError(f"{what} of dtype {dtype} cannot be sent; use one of {supported()}")
    return code


def oip_dtype(name: str, what: str = "tensor") -> np.dtype[Any]:
    """The little-endian numpy dtype of an Open Inference Protocol datatype name (``"FP32"``, ...)."""
    dt = OIP_DTYPES.get(name)
    if dt is None:
        raise WireError(f"{what}: datatype {name[:40]!r} is not supported; expected one of {', '.join(OIP_DTYPES)}")
    return dt


def oip_name(dtype: np.dtype[Any], what: str = "array") -> str:
    """The Open Inference Protocol datatype name of a numpy dtype (either byte order)."""
    name = _OIP_BY_NUMPY.get(np.dtype(dtype).newbyteorder("="))
    if name is None:
        raise WireError(f"{what} of dtype {dtype} has no Open Inference Protocol datatype; use one of {supported()}")
    return name
