"""What every unary-request call passes before its handler runs, in one interceptor.

- **Size per RPC.** gRPC's ``max_receive_message_length`` is one number for the whole port;
  only the calls that carry tensors (Predict, Explain, ExplainStream, ModelInfer) may use it.
  Every other request (ListModels, health, metadata, ...) is refused above
  :data:`SMALL_MESSAGE_BYTES` with RESOURCE_EXHAUSTED.
- **Decoding.** The request arrives as bytes and is decoded here, so a truncated or corrupt
  body ends with INVALID_ARGUMENT saying so (gRPC's own decoding answers UNKNOWN and names an
  internal exception class).
- **Memory back after large bodies.** glibc keeps freed buffers of large requests in its
  arenas; after a request of :data:`TRIM_AFTER_BYTES` or more the process asks it to return
  free memory to the system (``malloc_trim``, off the event loop, one at a time).

Calls refused by the token check never get here: they are refused before their body is read
(``server/grpc/auth.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb

log = logging.getLogger(__name__)

SMALL_MESSAGE_BYTES = 64 * 1024
TRIM_AFTER_BYTES = 1024 * 1024


def _method(service: Any, name: str) -> str:
    return f"/{service.full_name}/{name}"


_SISGUARD = pb.DESCRIPTOR.services_by_name["SISGuard"]
_INFERENCE = ip.DESCRIPTOR.services_by_name["GRPCInferenceService"]
TENSOR_METHODS = frozenset(
    {
        _method(_SISGUARD, "Predict"),
        _method(_SISGUARD, "Explain"),
        _method(_SISGUARD, "ExplainStream"),
        _method(_INFERENCE, "ModelInfer"),
    }
)


class MemoryReleaser:
    """Asks glibc to hand free heap memory back to the system, at most one request at a time."""

    def __init__(self) -> None:
        self._trim: Callable[[int], int] | None = None
        name = ctypes.util.find_library("c")
        with contextlib.suppress(OSError, AttributeError, TypeError):
            self._trim = ctypes.CDLL(name).malloc_trim if name else None
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def request(self) -> None:
        if self._trim is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        trim = self._trim
        if trim is None:
            return
        self._again = True
        while self._again:
            self._again = False
            await asyncio.to_thread(trim, 0)
            self.trims += 1

    async def wait(self) -> None:
        """Until the trims asked for so far are done."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        await self.wait()


class RequestGuard(grpc.aio.ServerInterceptor):
    """Per-RPC size limit, decoding with INVALID_ARGUMENT, memory released after large bodies."""

    def __init__(self, max_message_bytes: int, releaser: MemoryReleaser | None = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.releaser = releaser or MemoryReleaser()

    def limit(self, method: str) -> int:
        return self.max_message_bytes if method in TENSOR_METHODS else min(SMALL_MESSAGE_BYTES, self.max_message_bytes)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        return self._wrap(handler, handler_call_details.method)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        deserialize = handler.request_deserializer
        limit = self.limit(method)
        rpc = method.rsplit("/", 1)[-1]
        releaser = self.releaser

        async def admit(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            if len(raw) >= TRIM_AFTER_BYTES:
                releaser.request()
            if len(raw) > limit:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{rpc} request of {len(raw)} bytes exceeds the server limit of {limit} bytes for this call",
                )
            try:
                return deserialize(raw)
            except DecodeError:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{rpc} request body is not a valid protobuf message of the expected type (truncated or corrupt)",
                )

        kw: dict[str, Any] = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            fn = handler.unary_unary

            async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                request = await admit(raw, context)
                del raw
                return await fn(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, **kw)
        stream_fn = handler.unary_stream
        if inspect.isasyncgenfunction(stream_fn):

            async def streaming(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                request = await admit(raw, context)
                del raw
                async for item in stream_fn(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(streaming, **kw)

        async def writing(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            request = await admit(raw, context)
            del raw
            return await stream_fn(request, context)

        return grpc.unary_stream_rpc_method_handler(writing, **kw)
