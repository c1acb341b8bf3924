"""Errors raised by the core service.

The core raises only these types; the gRPC adapters map each to one status code
(``sisguard.server.grpc.status``). Messages are written for the caller: they say what was
expected and what came, and never carry internals (those go to the log).
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the core reports to a caller."""


class InvalidArgument(ServiceError):
    """The request is malformed: wrong shape, dtype, byte length, value or option."""


class NotFound(ServiceError):
    """The named pair or model does not exist."""


class ResourceExhausted(ServiceError):
    """A queue, a size limit or an evaluation budget was exceeded."""


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before its work could be done."""


class Unavailable(ServiceError):
    """The server is starting, shutting down or cannot take the request now."""


class FailedPrecondition(ServiceError):
    """The request cannot be served in the current state (e.g. a model not loaded)."""


class Internal(ServiceError):
    """An unexpected failure; the message is generic, details are logged."""
