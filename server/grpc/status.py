"""One table from core errors to gRPC status codes, and the wrappers that apply it.

Clients see the core's messages (written for them) and, for anything unexpected, INTERNAL
with a request id; the traceback goes to the log under the same id.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from sisguard.server import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Internal: grpc.StatusCode.INTERNAL,
}


class CallObserver(Protocol):
    """Told about every RPC: the metrics module implements it."""

    def call_started(self, rpc: str) -> None: ...

    def call_finished(self, rpc: str, code: str, seconds: float) -> None: ...


def request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's ``x-request-id`` if it sent a sane one, else a fresh id."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
            return value
    return uuid.uuid4().hex[:16]


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic()`` instant."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def classify(exc: BaseException, rpc: str, rid: str) -> tuple[grpc.StatusCode, str]:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code, str(exc)
    log.error("rpc %s failed unexpectedly (request id %s)", rpc, rid, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {rid})"


Req = TypeVar("Req")
Resp = TypeVar("Resp")


class HasObserver(Protocol):
    observer: CallObserver | None


def unary(rpc: str) -> Callable[..., Callable[..., Awaitable[Any]]]:
    """Wrap a unary servicer method: map errors, observe the call."""

    def wrap(
        fn: Callable[[Any, Req, grpc.aio.ServicerContext, str], Awaitable[Resp]],
    ) -> Callable[..., Awaitable[Resp]]:
        @functools.wraps(fn)
        async def method(self: HasObserver, request: Req, context: grpc.aio.ServicerContext) -> Resp:
            rid = request_id(context)
            start = time.monotonic()
            if self.observer:
                self.observer.call_started(rpc)
            code = grpc.StatusCode.OK
            try:
                return await fn(self, request, context, rid)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                code, message = classify(exc, rpc, rid)
            finally:
                if self.observer:
                    self.observer.call_finished(rpc, code.name, time.monotonic() - start)
            await context.abort(code, message)
            raise AssertionError("unreachable")  # abort raises

        return method

    return wrap


def stream(rpc: str) -> Callable[..., Callable[..., AsyncIterator[Any]]]:
    """Wrap a server-streaming servicer method (an async generator) the same way."""

    def wrap(
        fn: Callable[[Any, Req, grpc.aio.ServicerContext, str], AsyncIterator[Resp]],
    ) -> Callable[..., AsyncIterator[Resp]]:
        @functools.wraps(fn)
        async def method(self: HasObserver, request: Req, context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
            rid = request_id(context)
            start = time.monotonic()
            if self.observer:
                self.observer.call_started(rpc)
            code = grpc.StatusCode.OK
            message = ""
            try:
                async for item in fn(self, request, context, rid):
                    yield item
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                code, message = classify(exc, rpc, rid)
            finally:
                if self.observer:
                    self.observer.call_finished(rpc, code.name, time.monotonic() - start)
            if code != grpc.StatusCode.OK:
                await context.abort(code, message)

        return method

    return wrap
