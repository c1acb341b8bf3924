"""The request guard: per-RPC size limits from one table, and memory handed back after large bodies."""

from __future__ import annotations

import grpc
import pytest

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.app import App
from sisguard.server.grpc.guard import SMALL_MESSAGE_BYTES, TENSOR_METHODS, TRIM_AFTER_BYTES, RequestGuard


def test_only_tensor_rpcs_get_the_large_limit() -> None:
    guard = RequestGuard(64 << 20)
    assert guard.limit("/sisguard.v1.SISGuard/Predict") == 64 << 20
    assert guard.limit("/inference.GRPCInferenceService/ModelInfer") == 64 << 20
    assert guard.limit("/sisguard.v1.SISGuard/ListModels") == SMALL_MESSAGE_BYTES
    assert guard.limit("/grpc.health.v1.Health/Check") == SMALL_MESSAGE_BYTES
    assert len(TENSOR_METHODS) == 4
    assert RequestGuard(4096).limit("/sisguard.v1.SISGuard/ListModels") == 4096


async def test_a_large_body_is_followed_by_a_memory_trim(app: App) -> None:
    if not app.releaser.available:
        pytest.skip("no malloc_trim in this C library")
    before = app.releaser.trims
    req = pb.PredictRequest(pair="mini", inputs=pb.Tensor(dtype=pb.FLOAT32, shape=[1], data=b"\0" * TRIM_AFTER_BYTES))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await ch.unary_unary("/sisguard.v1.SISGuard/Predict")(req.SerializeToString(), timeout=30)
    await app.releaser.wait()  # the trim runs on a worker thread, asked for before the handler ran
    assert app.releaser.trims > before
