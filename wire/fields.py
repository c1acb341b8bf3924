"""Messages whose fields a dataclass mirrors by name, read without copying them one by one.

>>> import dataclasses
>>> @dataclasses.dataclass
... class Row:
...     dtype: int
...     shape: list[int]
>>> decode_fields(pb.Tensor(dtype=pb.INT32, shape=[2, 3]), Row)
Row(dtype=5, shape=[2, 3])
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb  # noqa: F401 (the doctest's messages)

__all__ = ["decode_fields"]

T = TypeVar("T")


def decode_fields(message: Any, into: type[T], **overrides: Any) -> T:
    """``into(**fields)``: every field of the dataclass ``into`` read from ``message`` by the same
    name (repeated fields as lists), except those given in ``overrides``."""
    names = [f.name for f in dataclasses.fields(into)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for name in names:
        if name in overrides:
            values[name] = overrides[name]
            continue
        value = getattr(message, name)
        values[name] = list(value) if hasattr(value, "__len__") and not isinstance(value, str | bytes) else value
    return into(**values)
