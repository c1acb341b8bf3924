"""Health Watch: the NOT_SERVING of a shutdown reaches every watcher on both ports, whatever
other watchers did before; the number of open watchers (they need no token) is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.server import write_config

from sisguard.server.app import App
from sisguard.server.config import load_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def config(tmp_path: Path, model_pair: tuple[Path, Path]) -> Path:
    dense, pruned = model_pair
    return write_config(
        tmp_path,
        [{"name": "mini", "dense": str(dense), "pruned": str(pruned)}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
        health_port=0,
        limits={"max_health_watchers": 6},
    )


async def statuses(call: grpc.aio.UnaryStreamCall) -> list[int]:
    seen = []
    try:
        while (resp := await call.read()) is not grpc.aio.EOF:
            seen.append(resp.status)
    except grpc.aio.AioRpcError:
        pass  # the stream ends when the server closes
    return seen


async def test_shutdown_reaches_every_watcher_after_another_one_left(config: Path) -> None:
    app = App(load_settings(config))
    await app.start()
    stopped = False
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as main,
            grpc.aio.insecure_channel(f"127.0.0.1:{app.health_port}") as side,
        ):
            watchers = []
            for ch in (main, side, main, side):
                call = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""))
                assert (await call.read()).status == SERVING
                watchers.append(call)
            named = health_pb2_grpc.HealthStub(main).Watch(
                health_pb2.HealthCheckRequest(service="sisguard.v1.SISGuard")
            )
            assert (await named.read()).status == SERVING
            # Someone opens a Watch on "" and goes away (this silenced every other "" watcher).
            leaver = health_pb2_grpc.HealthStub(main).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await leaver.read()).status == SERVING
            leaver.cancel()
            while app.health.watchers > len(watchers) + 1:  # the server saw it leave
                await asyncio.sleep(0.01)
            rest = [asyncio.ensure_future(statuses(c)) for c in (*watchers, named)]
            await app.stop(grace=1.0)
            stopped = True
            seen = await asyncio.wait_for(asyncio.gather(*rest), 30)
        assert all(s == [NOT_SERVING] for s in seen), seen
    finally:
        if not stopped:
            await app.stop(grace=0.5)


async def test_open_watchers_are_bounded(config: Path) -> None:
    app = App(load_settings(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.health_port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            calls = [stub.Watch(health_pb2.HealthCheckRequest()) for _ in range(6)]
            for c in calls:
                assert (await c.read()).status == SERVING
            extra = stub.Watch(health_pb2.HealthCheckRequest())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await extra.read()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "allows 6" in (err.value.details() or "")
            calls[0].cancel()
            while app.health.watchers > 5:
                await asyncio.sleep(0.01)
            again = stub.Watch(health_pb2.HealthCheckRequest())
            assert (await again.read()).status == SERVING
            # Check is unaffected by the watchers.
            resp = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert resp.status == SERVING
            for c in (*calls, again):
                c.cancel()
    finally:
        await app.stop(grace=0.5)


async def test_unknown_service_is_not_found_and_watch_says_service_unknown(config: Path) -> None:
    app = App(load_settings(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            call = stub.Watch(health_pb2.HealthCheckRequest(service="x" * 10_000))
            assert (await call.read()).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            call.cancel()
    finally:
        await app.stop(grace=0.5)
