"""The ``Agreement`` block of an Explain response, to and from the engine's :class:`AgreementResult`.

The block's fields are the engine's fields by name (a test keeps the two in step), so both
directions go over :func:`dataclasses.fields` once instead of copying them one by one. The two
cross-sufficiency flags are ``optional`` on the wire: unset means the side found no SIS
(``None``). Reasons travel as ``DivergenceReason`` codes; a code the reader does not know (a
newer peer) is skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, overload

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.sis.agreement import AgreementResult

from .vocab import REASONS

__all__ = ["AGREEMENT_FIELDS", "decode_agreement", "encode_agreement"]

T = TypeVar("T")

#: the fields of the block, in the engine's order
AGREEMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AgreementResult))
_OPTIONAL = ("dense_sis_sufficient_for_pruned", "pruned_sis_sufficient_for_dense")


def encode_agreement(agreement: AgreementResult) -> Any:
    """A ``sisguard.v1.Agreement`` holding ``agreement``."""
    values: dict[str, Any] = {name: getattr(agreement, name) for name in AGREEMENT_FIELDS}
    values["reasons"] = [REASONS.code(r) for r in agreement.reasons]
    for name in _OPTIONAL:
        if values[name] is None:
            del values[name]
    return pb.Agreement(**values)


@overload
def decode_agreement(message: Any) -> AgreementResult: ...


@overload
def decode_agreement(message: Any, into: Callable[..., T]) -> T: ...


def decode_agreement(message: Any, into: Callable[..., Any] = AgreementResult) -> Any:
    """The fields of a ``sisguard.v1.Agreement`` as ``into(**fields)`` (by default the engine's type)."""
    values: dict[str, Any] = {name: getattr(message, name) for name in AGREEMENT_FIELDS}
    for name in _OPTIONAL:
        if not message.HasField(name):
            values[name] = None
    values["reasons"] = tuple(name for name in (REASONS.get(r, None) for r in message.reasons) if name is not None)
    return into(**values)
