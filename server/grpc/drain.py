"""Draining for graceful shutdown: count calls in flight, refuse new ones once shutdown starts.

gRPC's own ``server.stop(grace)`` stops matching calls at once, and calls that reached the
transport but were not yet matched are cancelled (the client sees CANCELLED, not the
retryable UNAVAILABLE); long-lived health ``Watch`` streams also hold the grace period open
to its very end. So shutdown drains at the application level first:

1. health turns NOT_SERVING (the App does this);
2. :meth:`Drain.close`: every new call (health excepted) ends with UNAVAILABLE
   "server is shutting down" while the calls in flight go on;
3. :meth:`Drain.wait` returns once no call is in flight and none arrived for a short quiet
   period (or the grace period is over);
4. the App then stops the gRPC server, which ends the remaining health streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

MESSAGE = "server is shutting down; retry on another replica"
_EXEMPT = ("/grpc.health.v1.Health/",)


class Drain(grpc.aio.ServerInterceptor):
    """Counts calls in flight; after :meth:`close`, refuses new ones with UNAVAILABLE."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.closed = False
        self._last_activity = time.monotonic()
        self._changed = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._last_activity = time.monotonic()

    async def wait(self, deadline: float, quiet: float = 0.2) -> bool:
        """Wait until nothing is in flight and no call arrived for ``quiet`` seconds, or until
        ``deadline`` (``time.monotonic``); True when drained."""
        while True:
            now = time.monotonic()
            if self.in_flight == 0 and now - self._last_activity >= quiet:
                return True
            if now >= deadline:
                return False
            self._changed.clear()
            timeout = min(deadline - now, max(quiet - (now - self._last_activity), 0.01))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()
        self._changed.set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_EXEMPT):
            return handler
        return self._wrap(handler)

    @contextlib.asynccontextmanager
    async def _admitted(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Refuse the call with UNAVAILABLE once closed; otherwise count it in flight while it runs."""
        if self.closed:
            self._touch()
            await context.abort(grpc.StatusCode.UNAVAILABLE, MESSAGE)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._touch()

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        drain = self

        def unary(fn: Callable[..., Any]) -> Callable[..., Any]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with drain._admitted(context):
                    return await fn(request, context)

            return call

        def streaming(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not inspect.isasyncgenfunction(fn):  # a handler writing with context.write
                return unary(fn)

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with drain._admitted(context):
                    async for item in fn(request, context):
                        yield item

            return call

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kw)
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kw)
