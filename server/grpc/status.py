"""One table from core errors to gRPC status codes, and the wrappers that apply it.

Clients see the core's messages (written for them) and, for anything unexpected, INTERNAL
with a request id; the traceback goes to the log under the same id. Failures the caller
causes deeper down (ONNX Runtime refusing the input values, e.g. a token id outside the
vocabulary) are mapped here too, to INVALID_ARGUMENT; decoding failures are mapped in
``guard.py``; the wire codec's own errors (:mod:`sisguard.wire`) are in the table. Every call carries its request id
in the trailing metadata (``x-request-id``), on success and on failure.
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

from sisguard import sis, wire
from sisguard.server import errors

log = logging.getLogger(__name__)

# grpc.aio raises this private error for a write on a call that has already ended; should a grpc
# release drop it, nothing is caught here and `context.cancelled()` still tells a client that left.
try:
    from grpc._cython.cygrpc import ExecuteBatchError as _WriteOnEndedCall
except ImportError:  # pragma: no cover - depends on the grpc release
    _WriteOnEndedCall = ()  # type: ignore[assignment,misc]

REQUEST_ID_KEY = "x-request-id"
MAX_DETAILS_CHARS = 1000  # a message quoting a caller's 100 KB name would overflow the status trailer

STATUS: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Internal: grpc.StatusCode.INTERNAL,
    # the wire codec's (a message that does not fit the format); TooLarge before its base class
    wire.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    wire.WireError: grpc.StatusCode.INVALID_ARGUMENT,
    # the SIS engine's own errors
    sis.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    sis.BudgetExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    sis.ScoringError: grpc.StatusCode.INTERNAL,
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


def _shorten(message: str) -> str:
    return message if len(message) <= MAX_DETAILS_CHARS else message[: MAX_DETAILS_CHARS - 20] + " ... (shortened)"


def _runtime_refusal(exc: BaseException) -> str | None:
    """ONNX Runtime's reason when it refused the input values (its INVALID_ARGUMENT), else None."""
    kind = type(exc)
    if kind.__name__ != "InvalidArgument" or not kind.__module__.startswith("onnxruntime"):
        return None
    text = str(exc)
    # "[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Non-zero status code returned while running
    # Gather node. Name:'...' Status Message: indices element out of data bounds, ..."
    reason = text.split("Status Message:", 1)[1] if "Status Message:" in text else text.rsplit(" : ", 1)[-1]
    return " ".join(reason.split())[:300]


def classify(exc: BaseException, rpc: str, rid: str) -> tuple[grpc.StatusCode, str]:
    for kind, code in STATUS.items():
        if isinstance(exc, kind):
            return code, _shorten(str(exc))
    refusal = _runtime_refusal(exc)
    if refusal is not None:
        log.info("rpc %s: the model refused the input (request id %s): %s", rpc, rid, refusal)
        return grpc.StatusCode.INVALID_ARGUMENT, (
            f"the model refused the input values: {refusal}; expected values within the model's input "
            "domain (e.g. token ids inside its vocabulary)"
        )
    log.error("rpc %s failed unexpectedly (request id %s)", rpc, rid, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (request id {rid})"


def _trailer(rid: str) -> tuple[tuple[str, str], ...]:
    return ((REQUEST_ID_KEY, rid),)


class StalledStream(errors.DeadlineExceeded):
    """The client took no streamed message for the write timeout."""


class ClientGone(Exception):
    """A streamed message could not be sent: the call had already ended (the client cancelled or left)."""


async def write_within(context: grpc.aio.ServicerContext, item: Any, timeout: float | None) -> None:
    """Send one streamed message; a client that does not take it within ``timeout`` ends the call."""
    try:
        await asyncio.wait_for(context.write(item), timeout)
    except _WriteOnEndedCall as exc:
        raise ClientGone("the call ended before the message was sent") from exc
    except TimeoutError:
        raise StalledStream(
            f"the client read nothing for {timeout:g} s; the stream was ended (stream_write_timeout_seconds)"
        ) from None


Req = TypeVar("Req")
Resp = TypeVar("Resp")


class HasObserver(Protocol):
    observer: CallObserver | None

    @property
    def write_timeout(self) -> float | None: ...


def unary(rpc: str) -> Callable[..., Callable[..., Awaitable[Any]]]:
    """Wrap a unary servicer method: map errors, observe the call."""

    def wrap(
        fn: Callable[[Any, Req, grpc.aio.ServicerContext, str], Awaitable[Resp]],
    ) -> Callable[..., Awaitable[Resp]]:
        @functools.wraps(fn)
        async def method(self: HasObserver, request: Req, context: grpc.aio.ServicerContext) -> Resp:
            rid = request_id(context)
            context.set_trailing_metadata(_trailer(rid))
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
            await context.abort(code, message, trailing_metadata=_trailer(rid))
            raise RuntimeError("unreachable: context.abort raises")

        return method

    return wrap


def stream(rpc: str) -> Callable[..., Callable[..., Awaitable[None]]]:
    """Wrap a server-streaming servicer method (an async generator) the same way.

    Messages are written with :func:`write_within`, so a client that stops reading cannot hold
    the call (and the shutdown grace period) open longer than ``write_timeout``.
    """

    def wrap(
        fn: Callable[[Any, Req, grpc.aio.ServicerContext, str], AsyncIterator[Resp]],
    ) -> Callable[..., Awaitable[None]]:
        @functools.wraps(fn)
        async def method(self: HasObserver, request: Req, context: grpc.aio.ServicerContext) -> None:
            rid = request_id(context)
            context.set_trailing_metadata(_trailer(rid))
            start = time.monotonic()
            if self.observer:
                self.observer.call_started(rpc)
            code = grpc.StatusCode.OK
            message = ""
            stalled = False
            items = fn(self, request, context, rid)
            try:
                async for item in items:
                    await write_within(context, item, self.write_timeout)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                if isinstance(exc, ClientGone) or context.cancelled():  # the client's choice, not a failure here
                    code = grpc.StatusCode.CANCELLED
                else:
                    code, message = classify(exc, rpc, rid)
                    stalled = isinstance(exc, StalledStream)
            finally:
                await items.aclose()  # type: ignore[attr-defined]  # stops the work behind the stream
                if self.observer:
                    self.observer.call_finished(rpc, code.name, time.monotonic() - start)
            if stalled:
                # abort() would wait behind the unread message; return instead: the handler (and
                # the call in flight) ends now, the status goes out if the client ever reads.
                log.info("rpc %s: client stopped reading, stream ended (request id %s)", rpc, rid)
                context.set_code(code)
                context.set_details(message)
            elif code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                await context.abort(code, message, trailing_metadata=_trailer(rid))

        return method

    return wrap
