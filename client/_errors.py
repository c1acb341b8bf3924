"""One exception tree for everything a call can fail with, translated in one place: gRPC's
errors by status code, the wire codec's and the engine's (found before sending, or in what the
server sent) as :class:`InvalidInput` — see :func:`translated`.

>>> try:
...     raise NotFound("unknown pair 'x'", code="NOT_FOUND")
... except SISGuardError as exc:
...     (exc.code, exc.details)
('NOT_FOUND', "unknown pair 'x'")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from sisguard.sis.errors import InvalidInput as EngineInvalidInput
from sisguard.wire.errors import WireError

__all__ = [
    "Cancelled",
    "DeadlineExceeded",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "SISGuardError",
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "translate",
    "translated",
]


class SISGuardError(Exception):
    """Base of every error the SDK raises.

    Attributes:
        details: the server's explanation (or the SDK's, for errors found before sending).
        code: the gRPC status code name (``"NOT_FOUND"``, ...), ``None`` for local errors.
        request_id: the server's request id when it sent one.
    """

    def __init__(self, details: str, *, code: str | None = None, request_id: str | None = None) -> None:
        self.details = details
        self.code = code
        self.request_id = request_id
        super().__init__(details)

    def __str__(self) -> str:
        return f"{self.details} [{self.code}]" if self.code else self.details


class InvalidInput(SISGuardError, ValueError):
    """The request was malformed: wrong shape, dtype, option or value (INVALID_ARGUMENT,
    FAILED_PRECONDITION, OUT_OF_RANGE, or found by the SDK before sending)."""


class NotFound(SISGuardError):
    """The named pair or model does not exist (NOT_FOUND)."""


class ResourceExhausted(SISGuardError):
    """A queue, size limit or evaluation budget was exceeded (RESOURCE_EXHAUSTED)."""


class DeadlineExceeded(SISGuardError, TimeoutError):
    """The call's timeout passed (DEADLINE_EXCEEDED)."""


class Unavailable(SISGuardError, ConnectionError):
    """The server cannot be reached, is starting or shutting down (UNAVAILABLE), after retries."""


class Unauthenticated(SISGuardError):
    """No valid credentials: missing or wrong token, or TLS trouble (UNAUTHENTICATED)."""


class PermissionDenied(SISGuardError):
    """The credentials are valid but not allowed to do this (PERMISSION_DENIED)."""


class Cancelled(SISGuardError):
    """The call was cancelled, e.g. because the client was closed (CANCELLED)."""


class ServerError(SISGuardError):
    """The server failed (INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[SISGuardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidInput,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInput,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def translate(err: grpc.RpcError) -> SISGuardError:
    """The SDK exception for a failed call; raise it ``from err``."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = err.details() if callable(getattr(err, "details", None)) else None
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    request_id = None
    trailing = err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None
    for key, value in trailing or ():
        if key == "x-request-id" and isinstance(value, str):
            request_id = value
    kind = _BY_CODE.get(code, ServerError) if isinstance(code, grpc.StatusCode) else ServerError
    return kind(str(details or name.replace("_", " ").lower()), code=name, request_id=request_id)


@contextmanager
def translated() -> Iterator[None]:
    """Raise the SDK's exception, chained ``from`` the original, for whatever fails inside.

    gRPC's errors map by status code (:func:`translate`); the wire codec's (a tensor or value that
    cannot travel, or a malformed one the server sent) and the engine's (a group map or shape
    refused by the local helpers) become :class:`InvalidInput`. Usable as ``with translated():``
    around a call or a stream, and as ``@translated()`` on a function.
    """
    try:
        yield
    except grpc.RpcError as err:
        raise translate(err) from err
    except (WireError, EngineInvalidInput) as err:
        raise InvalidInput(str(err)) from err
