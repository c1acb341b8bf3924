"""The server process: gRPC services on one port, health and reflection, models loaded behind
a NOT_SERVING health status until every one is verified and warmed up.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.config import Settings
from sisguard.server.grpc.auth import TokenAuthInterceptor, accepted_tokens
from sisguard.server.grpc.drain import Drain
from sisguard.server.grpc.inference_servicer import InferenceServicer
from sisguard.server.grpc.sisguard_servicer import SISGuardServicer
from sisguard.server.metrics import Metrics, MetricsServer
from sisguard.server.probes import NoiseProbes
from sisguard.server.service import Service
from sisguard.server.shadow import ShadowExplanations
from sisguard.server.tls import server_credentials

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["SISGuard"].full_name,
    ip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class App:
    """Owns the gRPC server, the core service and the health status.

    ``start`` binds the port and then loads the models; health answers NOT_SERVING until they
    are ready. ``stop`` turns health to NOT_SERVING, refuses new calls, lets in-flight calls
    finish within the grace period and closes the batchers.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.service = Service(settings, observer=self.metrics)
        self.metrics_server: MetricsServer | None = None  # settings.metrics_port; None disables
        self.shadow: ShadowExplanations | None = None
        self.probes: NoiseProbes | None = None
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None
        self.health_server: grpc.aio.Server | None = None  # plaintext health-only port (settings.health_port)
        self.health_port: int | None = None
        self.drain = Drain()  # counts calls in flight; refuses new ones once stop() begins

    def _grpc_options(self) -> list[tuple[str, int]]:
        size = self.settings.limits.max_message_bytes
        return [
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 0),
        ]

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        tokens = accepted_tokens(self.settings)
        return [self.drain, *([TokenAuthInterceptor(tokens)] if tokens else [])]

    def _bind(self, server: grpc.aio.Server, address: str) -> int:
        creds = server_credentials(self.settings.tls)
        port = server.add_insecure_port(address) if creds is None else server.add_secure_port(address, creds)
        if port == 0:
            raise OSError(f"cannot bind {address}")
        return port

    async def _start_health_port(self) -> None:
        if self.settings.health_port is None:
            return
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.health_port = self._bind_plain(server, f"{self.settings.host}:{self.settings.health_port}")
        await server.start()
        self.health_server = server

    @staticmethod
    def _bind_plain(server: grpc.aio.Server, address: str) -> int:
        port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind {address}")
        return port

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def start(self) -> int:
        """Serve; returns the bound port once every model is loaded and warmed up."""
        server = grpc.aio.server(options=self._grpc_options(), interceptors=self._interceptors())
        pb_grpc.add_SISGuardServicer_to_server(SISGuardServicer(self.service, observer=self.metrics), server)
        ip_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.service, observer=self.metrics), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if self.settings.reflection:
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                server,
            )
        address = f"{self.settings.host}:{self.settings.port}"
        port = self._bind(server, address)
        await self._set_health(_NOT_SERVING)
        await server.start()
        self.server, self.port = server, port
        try:
            await self._start_health_port()
            self._start_metrics()
            await asyncio.to_thread(self.service.load)
        except BaseException:
            await server.stop(None)
            if self.health_server is not None:
                await self.health_server.stop(None)
            self._stop_metrics()
            raise
        self.service.start()
        self._start_monitoring()
        await self._set_health(_SERVING)
        log.info("serving on %s:%d", self.settings.host, port)
        return port

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        await self.health.enter_graceful_shutdown()
        self.drain.close()  # new calls: UNAVAILABLE; calls in flight go on (see server/grpc/drain.py)
        if not await self.drain.wait(deadline) and self.drain.in_flight:
            log.warning("grace period over: cancelling %d calls still in flight", self.drain.in_flight)
        if self.server is not None:
            await self.server.stop(max(0.0, deadline - time.monotonic()) if self.drain.in_flight else 0)
        if self.health_server is not None:  # answers NOT_SERVING until the main port is closed
            await self.health_server.stop(None)
        await self._stop_monitoring()
        await self.service.close()
        self._stop_metrics()

    # -- monitoring (docs/monitoring.md) ------------------------------------------------------

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics_server is None else self.metrics_server.port

    def _start_metrics(self) -> None:
        if self.settings.metrics_port is not None and self.metrics_server is None:
            self.metrics_server = MetricsServer(self.registry, self.settings.metrics_host, self.settings.metrics_port)
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, self.metrics_server.port)

    def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    def _start_monitoring(self) -> None:
        """Metrics series for the loaded pairs, then shadow explanations and noise probes on Predict."""
        pairs = self.service.pairs.values()
        self.metrics.register_pairs(pairs)
        self.shadow = ShadowExplanations(self.service, self.metrics)
        self.probes = NoiseProbes(self.service, self.metrics)
        self.service.predict_listeners += [self.shadow.rows_predicted, self.probes.rows_predicted]
        self.shadow.start()
        self.probes.start()
        self.metrics.set_all_ready(pairs, True)

    async def _stop_monitoring(self) -> None:
        self.metrics.set_all_ready(self.service.pairs.values(), False)
        for background in (self.shadow, self.probes):
            if background is not None:
                await background.close()

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()
