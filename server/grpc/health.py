"""``grpc.health.v1.Health`` with a shutdown signal that reaches every watcher.

Each ``Watch`` call owns one small slot (the latest status and an event); :meth:`set` updates
the slot of every watcher of that service name, so a watcher that comes and goes touches only
its own slot. (grpc_health's aio servicer shares state between the watchers of one name, and a
single closed ``Watch`` used to stop the NOT_SERVING at shutdown from reaching the others.)

Health needs no token, so what one caller can hold is bounded: at most ``max_watchers`` open
``Watch`` calls in all (RESOURCE_EXHAUSTED beyond), each holding one slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
MAX_SERVICE_NAME = 200  # longer names cannot be registered, so they are answered at once


@dataclass(eq=False)
class _Watcher:
    service: str
    status: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class HealthServicer(health_pb2_grpc.HealthServicer):
    """Check and Watch over a table of service statuses."""

    def __init__(self, max_watchers: int = 1024) -> None:
        self.max_watchers = max_watchers
        self._status: dict[str, int] = {}
        self._watchers: set[_Watcher] = set()
        self._shutting_down = False

    @property
    def watchers(self) -> int:
        """Open Watch calls."""
        return len(self._watchers)

    async def set(self, service: str, status: int) -> None:
        """Record ``status`` for ``service`` and tell its watchers; ignored once shutting down."""
        if self._shutting_down:
            return
        self._publish(service, status)

    async def enter_graceful_shutdown(self) -> None:
        """Every service turns NOT_SERVING, every watcher is told, later :meth:`set` calls are ignored."""
        self._shutting_down = True
        for service in list(self._status):
            self._publish(service, NOT_SERVING)

    def _publish(self, service: str, status: int) -> None:
        self._status[service] = status
        for w in self._watchers:
            if w.service == service and w.status != status:
                w.status = status
                w.changed.set()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        if len(self._watchers) >= self.max_watchers:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self._watchers)} health watchers are open, the server allows {self.max_watchers}",
            )
        name = request.service if len(request.service) <= MAX_SERVICE_NAME else "\0"
        w = _Watcher(name, self._status.get(name, SERVICE_UNKNOWN))
        self._watchers.add(w)
        try:
            sent = w.status
            yield health_pb2.HealthCheckResponse(status=sent)
            while True:
                await w.changed.wait()
                w.changed.clear()
                if w.status != sent:
                    sent = w.status
                    yield health_pb2.HealthCheckResponse(status=sent)
        finally:
            self._watchers.discard(w)
