"""Open Inference Protocol inputs the caller got wrong: typed values out of the datatype's range
and token ids outside the model's vocabulary are INVALID_ARGUMENT with a message saying what was
expected (they used to be INTERNAL), and the server keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from security.hostile_models import TOKENS, VOCAB, token_model
from support.server import running, write_config

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.grpc.status import classify
from sisguard.wire import OIP_DTYPES, WireError, from_values, to_tensor


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("oip")
    model = token_model(d / "tokens.onnx")
    return write_config(
        d,
        [{"name": "tokens", "dense": str(model), "pruned": str(model), "max_batch_size": 4}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )


@pytest.fixture
async def channel(config: Path) -> AsyncIterator[grpc.aio.Channel]:
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


def typed(values: list[int], datatype: str = "INT64", field: str = "int64_contents") -> ip.ModelInferRequest:
    req = ip.ModelInferRequest(model_name="tokens.dense")
    spec = req.inputs.add(name="ids", datatype=datatype, shape=[1, len(values)])
    getattr(spec.contents, field).extend(values)
    return req


async def infer(ch: grpc.aio.Channel, req: ip.ModelInferRequest) -> tuple[grpc.StatusCode, str]:
    try:
        await ip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req, timeout=30)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_token_ids_outside_the_vocabulary(channel: grpc.aio.Channel) -> None:
    assert (await infer(channel, typed([1] * TOKENS)))[0] == grpc.StatusCode.OK
    code, details = await infer(channel, typed([VOCAB + 900] * TOKENS))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # refused before the model runs: the vocabulary is read from the embedding table
    assert "token id 1000" in details and "vocabulary is ids 0 to 99" in details
    # The same through the sisguard API.
    req = pb.PredictRequest(pair="tokens", inputs=to_tensor(np.full((1, TOKENS), 5000, np.int64)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pb_grpc.SISGuardStub(channel).Predict(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await infer(channel, typed([2] * TOKENS)))[0] == grpc.StatusCode.OK


RANGE_CASES = [
    ("INT8", "int_contents", 1000, "[-128, 127]"),
    ("INT16", "int_contents", 70000, "[-32768, 32767]"),
    ("UINT8", "uint_contents", 300, "[0, 255]"),
    ("INT8", "int_contents", -129, "[-128, 127]"),
]


@pytest.mark.parametrize(("datatype", "field", "value", "expected"), RANGE_CASES)
async def test_typed_values_out_of_the_datatypes_range(
    channel: grpc.aio.Channel, datatype: str, field: str, value: int, expected: str
) -> None:
    code, details = await infer(channel, typed([value] + [0] * (TOKENS - 1), datatype, field))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"value {value} is out of range" in details and expected in details
    assert (await infer(channel, typed([3] * TOKENS)))[0] == grpc.StatusCode.OK


def test_from_values_keeps_values_in_range_exactly() -> None:
    for name in ("INT8", "INT16", "INT32", "UINT8", "INT64"):
        dt = OIP_DTYPES[name]
        info = np.iinfo(dt)
        got = from_values([info.min, 0, info.max], dt, [3], "x")
        assert got.dtype == dt and got.tolist() == [info.min, 0, info.max]
    with pytest.raises(WireError) as err:
        from_values([256], OIP_DTYPES["UINT8"], [1], "x")
    assert classify(err.value, "ModelInfer", "r")[0] == grpc.StatusCode.INVALID_ARGUMENT
