"""Limits from the settings are enforced before work starts, each with its status and a clear message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.server import running

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.config import Settings
from sisguard.wire import to_tensor

LIMITS = {"max_message_bytes": 64 * 1024, "max_elements": 5 * 64, "max_batch_rows": 4}


@pytest.fixture
async def limited(pair_config: Path) -> AsyncIterator[App]:
    async with running(pair_config, limits=LIMITS) as app:
        yield app


def rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).random((n, 1, 8, 8), dtype=np.float32)


def predict_request(x: np.ndarray) -> pb.PredictRequest:
    return pb.PredictRequest(pair="mini", inputs=to_tensor(x))


def infer_request(x: np.ndarray) -> ip.ModelInferRequest:
    req = ip.ModelInferRequest(model_name="mini.dense")
    req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    return req


CASES = [
    # (what, rows, code, message fragment)
    ("within every limit", 4, grpc.StatusCode.OK, ""),
    ("batch rows", 5, grpc.StatusCode.RESOURCE_EXHAUSTED, "exceeds the server limit of 4 rows"),
    ("elements", 6, grpc.StatusCode.RESOURCE_EXHAUSTED, "the server limit of 320"),
    ("message size", 300, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
]


@pytest.mark.parametrize(("what", "n", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("api", ["Predict", "ModelInfer"])
async def test_limits(limited: App, api: str, what: str, n: int, code: grpc.StatusCode, fragment: str) -> None:
    x = rows(n)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as ch:
        if api == "Predict":
            call = pb_grpc.SISGuardStub(ch).Predict(predict_request(x), timeout=10)
        else:
            call = ip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(infer_request(x), timeout=10)
        if code == grpc.StatusCode.OK:
            await call
            return
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == code
        assert fragment in (err.value.details() or "")
        # The server keeps serving after refusing.
        await pb_grpc.SISGuardStub(ch).Predict(predict_request(rows(1)), timeout=10)


def test_metrics_port_binds_loopback_unless_configured() -> None:
    assert Settings().metrics_host == "127.0.0.1"
