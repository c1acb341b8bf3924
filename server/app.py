"""The server process: gRPC services on one port, health and reflection, models loaded behind
a NOT_SERVING health status until every one is verified and warmed up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.background.probes import NoiseProbes, ShiftProbes
from sisguard.server.background.shadow import ShadowExplanations
from sisguard.server.config import Settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.grpc.auth import TokenAuthInterceptor, load_tokens
from sisguard.server.grpc.drain import Drain
from sisguard.server.grpc.guard import SMALL_MESSAGE_BYTES, MemoryReleaser, RequestGuard
from sisguard.server.grpc.health import HealthServicer
from sisguard.server.grpc.inference_servicer import InferenceServicer
from sisguard.server.grpc.sisguard_servicer import SISGuardServicer
from sisguard.server.metrics import Metrics, MetricsServer, MonitoredPair
from sisguard.server.tls import check_key_matches, server_credentials

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["SISGuard"].full_name,
    ip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _check_bindable(address: str, what: str) -> None:
    """Raise a one-line OSError when ``host:port`` cannot be bound (grpc would log a multi-line core
    error and raise RuntimeError). Port 0 always binds."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot bind {what} {address}: {getattr(exc, 'strerror', None) or exc}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise OSError(f"cannot bind {what} {address}: {exc.strerror or exc}") from None


class App:
    """Owns the gRPC server, the data plane and the health status.

    ``start`` binds the port and then loads the models; health answers NOT_SERVING until they
    are ready. ``stop`` turns health to NOT_SERVING, refuses new calls, lets in-flight calls
    finish within the grace period and closes the batchers.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.dataplane = DataPlane(settings, observer=self.metrics)
        self.metrics_server: MetricsServer | None = None  # settings.metrics_port; None disables
        self.shadow: ShadowExplanations | None = None
        self.probes: NoiseProbes | None = None
        self.shift_probes: ShiftProbes | None = None
        self._verdict_task: asyncio.Task[None] | None = None
        self.health = HealthServicer(settings.limits.max_health_watchers)
        self.releaser = MemoryReleaser()  # returns freed heap memory after large request bodies
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
        """Drain (counts and refuses at shutdown), tokens (refuse before the body is read), then
        the request guard (size per RPC, decoding)."""
        tokens = load_tokens(self.settings)
        (log.info if tokens.enabled else log.warning)("%s", tokens.describe())
        guard = RequestGuard(self.settings.limits.max_message_bytes, self.releaser)
        return [self.drain, *([TokenAuthInterceptor(tokens.tokens)] if tokens.enabled else []), guard]

    def _bind(self, server: grpc.aio.Server, address: str) -> int:
        creds = server_credentials(self.settings.tls)
        if creds is None:
            return self._bind_plain(server, address)
        check_key_matches(self.settings.tls)  # grpc would only say "Failed to bind"
        _check_bindable(address, "port")
        try:
            port = server.add_secure_port(address, creds)
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(f"cannot bind {address}: the address is in use or not available on this host")
        return port

    async def _start_health_port(self) -> None:
        if self.settings.health_port is None:
            return
        # Only grpc.health.v1, with no token: its requests are a service name, so a few KiB is plenty.
        options = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", SMALL_MESSAGE_BYTES)]
        server = grpc.aio.server(options=options, interceptors=[RequestGuard(SMALL_MESSAGE_BYTES, self.releaser)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.health_port = self._bind_plain(server, f"{self.settings.host}:{self.settings.health_port}", "health_port")
        await server.start()
        self.health_server = server

    @staticmethod
    def _bind_plain(server: grpc.aio.Server, address: str, what: str = "port") -> int:
        _check_bindable(address, what)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:  # grpc raises with a multi-line core error when the port is taken
            port = 0
        if port == 0:
            raise OSError(f"cannot bind {what} {address}: the address is in use or not available on this host")
        return port

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def start(self) -> int:
        """Serve; returns the bound port once every model is loaded and warmed up."""
        server = grpc.aio.server(options=self._grpc_options(), interceptors=self._interceptors())
        pb_grpc.add_SISGuardServicer_to_server(SISGuardServicer(self.dataplane, observer=self.metrics), server)
        ip_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.dataplane, observer=self.metrics), server
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
            await self._start_metrics()
            await asyncio.to_thread(self.dataplane.load)  # models, and each pair's explain files
        except BaseException:
            await server.stop(None)
            if self.health_server is not None:
                await self.health_server.stop(None)
            await self._stop_metrics()
            raise
        self.dataplane.start()
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
        await self.dataplane.close()
        await self._stop_metrics()
        await self.releaser.close()

    # -- monitoring (docs/monitoring.md) ------------------------------------------------------

    @property
    def metrics_port(self) -> int | None:
        return None if self.metrics_server is None else self.metrics_server.port

    async def _start_metrics(self) -> None:
        if self.settings.metrics_port is not None and self.metrics_server is None:
            server = MetricsServer(self.registry, self.settings.metrics_host, self.settings.metrics_port)
            await server.start()
            self.metrics_server = server
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, server.port)

    async def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None

    def _start_monitoring(self) -> None:
        """Metrics series for the loaded pairs, then shadow explanations and noise probes on Predict."""
        monitored = [MonitoredPair.of(p) for p in self.dataplane.pairs.values()]
        self.metrics.register_pairs(monitored)
        self.shadow = ShadowExplanations(self.dataplane, self.metrics.shadow_observer)
        self.probes = NoiseProbes(self.dataplane, self.metrics.noise_probe_observer)
        self.shift_probes = ShiftProbes(self.dataplane, self.metrics.shift_probe_observer)
        self.dataplane.predict_listeners += [
            self.shadow.rows_predicted,
            self.probes.rows_predicted,
            self.shift_probes.rows_predicted,
        ]
        self.shadow.start()
        self.probes.start()
        self.shift_probes.start()
        self._verdict_task = asyncio.get_running_loop().create_task(self._export_verdicts(), name="verdicts")
        self.metrics.set_all_ready(monitored, True)

    async def _export_verdicts(self) -> None:
        """Recompute each pair's verdict when its samples changed, at most every ``verdict.update_seconds``."""
        seen: dict[str, int] = {}
        due: dict[str, float] = {}
        period = min(p.config.verdict.update_seconds for p in self.dataplane.pairs.values())
        while True:
            now = time.monotonic()
            for name, signal in self.dataplane.signals.items():
                if signal.version != seen.get(name) and now >= due.get(name, 0.0):
                    seen[name] = signal.version
                    due[name] = now + self.dataplane.pairs[name].config.verdict.update_seconds
                    try:
                        report = await asyncio.to_thread(signal.report, signal.snapshot())  # bootstrap off the loop
                    except Exception:  # a failed report must not stop the others (or the next one)
                        log.exception("pair %s: computing the verdict failed", name)
                        continue
                    self.metrics.verdict_updated(report)
            await asyncio.sleep(period)

    async def _stop_monitoring(self) -> None:
        self.metrics.set_all_ready([MonitoredPair.of(p) for p in self.dataplane.pairs.values()], False)
        if self._verdict_task is not None:
            self._verdict_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._verdict_task
            self._verdict_task = None
        for background in (self.shadow, self.probes, self.shift_probes):
            if background is not None:
                await background.close()

    async def wait(self) -> None:
        if self.server is not None:
            await self.server.wait_for_termination()
