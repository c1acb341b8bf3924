"""Every kind of bad input gets its status and a message saying what was expected; the server keeps serving."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import to_tensor

GOOD = np.zeros((1, 1, 8, 8), np.float32)


def tensor(dtype: int, shape: list[int], data: bytes) -> pb.Tensor:
    return pb.Tensor(dtype=dtype, shape=shape, data=data)


CASES = [
    (
        "unknown pair",
        pb.PredictRequest(pair="nope", inputs=to_tensor(GOOD)),
        grpc.StatusCode.NOT_FOUND,
        "available: mini",
    ),
    (
        "wrong shape",
        pb.PredictRequest(pair="mini", inputs=to_tensor(np.zeros((1, 8, 8), np.float32))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected [batch, 1, 8, 8]",
    ),
    (
        "wrong dtype",
        pb.PredictRequest(pair="mini", inputs=to_tensor(GOOD.astype(np.float64))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected float32",
    ),
    (
        "byte length",
        pb.PredictRequest(pair="mini", inputs=tensor(pb.FLOAT32, [1, 1, 8, 8], b"\0" * 255)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expected 256 bytes",
    ),
    (
        "negative dim",
        pb.PredictRequest(pair="mini", inputs=tensor(pb.FLOAT32, [-1, 1, 8, 8], b"")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "negative dimension",
    ),
    (
        "huge dims",
        pb.PredictRequest(pair="mini", inputs=tensor(pb.FLOAT32, [2**40, 2**40], b"")),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "exceed the server limit",
    ),
    (
        "nan",
        pb.PredictRequest(pair="mini", inputs=to_tensor(np.full((1, 1, 8, 8), np.nan, np.float32))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NaN or Inf",
    ),
    (
        "inf",
        pb.PredictRequest(pair="mini", inputs=to_tensor(np.full((2, 1, 8, 8), np.inf, np.float32))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "NaN or Inf",
    ),
    (
        "empty batch",
        pb.PredictRequest(pair="mini", inputs=to_tensor(np.zeros((0, 1, 8, 8), np.float32))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "empty batch",
    ),
    ("missing inputs", pb.PredictRequest(pair="mini"), grpc.StatusCode.INVALID_ARGUMENT, "inputs missing"),
    (
        "unknown dtype",
        pb.PredictRequest(pair="mini", inputs=tensor(77, [1], b"\0")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not supported",
    ),
    (
        "unknown variant",
        pb.PredictRequest(pair="mini", inputs=to_tensor(GOOD), variant=9),
        grpc.StatusCode.INVALID_ARGUMENT,
        "DENSE, PRUNED, BOTH",
    ),
]


@pytest.mark.parametrize(("name", "request_", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
async def test_bad_predict_input(app, name, request_, code, fragment) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.SISGuardStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Predict(request_)
        assert info.value.code() == code
        assert fragment in info.value.details()
        ok = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(GOOD)))  # still serving
        assert len(ok.dense.top1) == 1


async def test_oversized_message_is_resource_exhausted(pair_config) -> None:
    from support.server import running

    async with (
        running(pair_config, limits={"max_message_bytes": 4096}) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        stub = pb_grpc.SISGuardStub(channel)
        big = np.zeros((64, 1, 8, 8), np.float32)  # 16 KiB
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(big)))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(GOOD)))
        assert len(ok.dense.top1) == 1


async def test_unexpected_failure_is_internal_with_request_id(app, caplog) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    app.dataplane.predict = boom  # an unexpected bug inside the core
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.SISGuardStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Predict(
                pb.PredictRequest(pair="mini", inputs=to_tensor(GOOD)), metadata=[("x-request-id", "abc123")]
            )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "abc123" in info.value.details()
    assert "secret" not in info.value.details()
    assert "secret internal detail" in caplog.text
