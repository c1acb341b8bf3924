"""Graceful shutdown of ``sisguard serve``: SIGTERM turns health NOT_SERVING, refuses new calls,
lets in-flight calls finish, and exits 0. No request hangs or is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from grpc_health.v1 import health_pb2, health_pb2_grpc
from reliability.procs import ServerProcess
from support.server import write_config

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import from_tensor, to_tensor

CLIENTS = 12
SIGNAL_AFTER = 150  # successful responses before SIGTERM
GRACE = 5.0
CALL_TIMEOUT = 20.0  # a call still open after this counts as hung


def expected_probabilities(model: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": x})[0].astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


async def test_sigterm_mid_stream(tmp_path: Path, model_pair: tuple[Path, Path]) -> None:
    dense, pruned = model_pair
    config = write_config(
        tmp_path,
        [{"name": "mini", "dense": str(dense), "pruned": str(pruned), "max_batch_size": 8}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
        grace_seconds=GRACE,
    )
    inputs = [np.random.default_rng(i).random((1 + i % 4, 1, 8, 8), dtype=np.float32) for i in range(32)]
    expected = [expected_probabilities(dense, x) for x in inputs]

    server = ServerProcess(config)
    await asyncio.to_thread(server.wait_serving)
    outcomes: list[str] = []  # "ok" or a status code name
    ok_count = 0
    signalled = asyncio.Event()

    async def client(k: int) -> None:
        nonlocal ok_count
        refused_after_signal = 0
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = pb_grpc.SISGuardStub(ch)
            i = k
            while refused_after_signal < 3:
                x = inputs[i % len(inputs)]
                try:
                    resp = await stub.Predict(
                        pb.PredictRequest(pair="mini", inputs=to_tensor(x), variant=pb.DENSE), timeout=CALL_TIMEOUT
                    )
                except grpc.aio.AioRpcError as exc:
                    outcomes.append(exc.code().name)
                    if signalled.is_set():
                        refused_after_signal += 1
                    await asyncio.sleep(0.05)
                    continue
                got = from_tensor(resp.dense.probabilities, "p", 1 << 20)
                assert np.allclose(got, expected[i % len(inputs)], atol=1e-5), "wrong result"
                outcomes.append("ok")
                ok_count += 1
                if ok_count == SIGNAL_AFTER and not signalled.is_set():
                    server.terminate()
                    signalled.set()
                i += CLIENTS

    async def watch_health() -> list[int]:
        seen: list[int] = []
        async with grpc.aio.insecure_channel(server.address) as ch:
            try:
                async for resp in health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest()):
                    seen.append(resp.status)
            except grpc.aio.AioRpcError:
                pass  # the stream ends when the server goes away
        return seen

    watcher = asyncio.create_task(watch_health())
    try:
        await asyncio.wait_for(asyncio.gather(*(client(k) for k in range(CLIENTS))), timeout=120)
        code = await asyncio.to_thread(server.proc.wait, 60)
        seen = await asyncio.wait_for(watcher, timeout=30)
    finally:
        server.stop()

    assert signalled.is_set()
    assert code == 0, server.stderr
    # Every request either completed correctly (checked above) or was refused as UNAVAILABLE.
    assert set(outcomes) <= {"ok", "UNAVAILABLE"}, sorted(set(outcomes))
    assert outcomes.count("ok") >= SIGNAL_AFTER
    assert outcomes.count("UNAVAILABLE") >= 3 * CLIENTS
    # Health went from SERVING to NOT_SERVING before the server closed.
    S, N = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert S in seen and N in seen and seen.index(N) > seen.index(S), seen
    assert "shutting down" in server.stderr


async def test_new_calls_are_refused_once_shutdown_starts(tmp_path: Path, model_pair: tuple[Path, Path]) -> None:
    """While in-flight calls still run out their grace period, a new call is refused at once."""
    dense, pruned = model_pair
    config = write_config(
        tmp_path,
        [{"name": "mini", "dense": str(dense), "pruned": str(pruned)}],
        runtime={"providers": ["cpu"]},
        grace_seconds=GRACE,
    )
    server = ServerProcess(config)
    await asyncio.to_thread(server.wait_serving)
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest())  # an open call keeps the grace period running
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            server.terminate()
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
            async with grpc.aio.insecure_channel(server.address) as fresh:
                try:
                    await pb_grpc.SISGuardStub(fresh).ListModels(pb.ListModelsRequest(), timeout=CALL_TIMEOUT)
                    refused = None
                except grpc.aio.AioRpcError as exc:
                    refused = exc.code()
            assert refused == grpc.StatusCode.UNAVAILABLE
            watch.cancel()
        assert await asyncio.to_thread(server.proc.wait, 60) == 0
    finally:
        server.stop()
