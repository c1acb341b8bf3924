"""The metrics endpoint: served on the event loop, bounded connections, no thread per connection."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry

from sisguard.server.metrics import Metrics, MetricsServer


async def _get(port: int, path: str = "/metrics", method: str = "GET") -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode().splitlines()[0], body


async def test_serves_metrics_and_refuses_other_paths_and_methods() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.call_finished("Predict", "OK", 0.01)
    server = MetricsServer(reg, "127.0.0.1", 0)
    await server.start()
    try:
        status, body = await _get(server.port)
        assert status == "HTTP/1.1 200 OK" and b'sisguard_requests_total{code="OK",rpc="Predict"} 1.0' in body
        assert (await _get(server.port, "/nope"))[0].startswith("HTTP/1.1 404")
        assert (await _get(server.port, "/metrics", "POST"))[0].startswith("HTTP/1.1 405")
    finally:
        await server.close()


async def test_idle_connections_neither_start_threads_nor_lock_out_a_scrape() -> None:
    reg = CollectorRegistry()
    Metrics(reg)
    server = MetricsServer(reg, "127.0.0.1", 0, max_connections=16)
    await server.start()
    threads_before = threading.active_count()
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(300)]
    try:
        status, body = await _get(server.port)  # the 301st connection still gets its answer
        assert status == "HTTP/1.1 200 OK" and b"sisguard_requests_in_flight" in body
        assert server.open_connections <= 16
        assert threading.active_count() <= threads_before + 1
    finally:
        for _, w in idle:
            w.close()
        await server.close()


async def test_a_taken_port_is_one_clear_error() -> None:
    reg = CollectorRegistry()
    first = MetricsServer(reg, "127.0.0.1", 0)
    await first.start()
    try:
        second = MetricsServer(reg, "127.0.0.1", first.port)
        try:
            await second.start()
        except OSError as exc:
            assert str(exc).startswith(f"cannot bind metrics address 127.0.0.1:{first.port}")
        else:
            raise AssertionError("binding a taken port succeeded")
    finally:
        await first.close()
