"""Every call carries its request id in the trailing metadata (``x-request-id``), on success and on
failure, and the SDK's errors expose it."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from sisguard.client import AsyncClient, NotFound
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.wire import to_tensor


def rid_of(metadata: object) -> str | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == "x-request-id":
            return str(value)
    return None


async def test_trailing_metadata_carries_the_request_id(app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        ok = stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(np.zeros((1, 1, 8, 8), np.float32))))
        resp = await ok
        assert rid_of(await ok.trailing_metadata()) == resp.request_id != ""
        mine = stub.ListModels(pb.ListModelsRequest(), metadata=(("x-request-id", "trace-42"),))
        await mine
        assert rid_of(await mine.trailing_metadata()) == "trace-42"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Predict(pb.PredictRequest(pair="nope"), metadata=(("x-request-id", "trace-43"),))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert rid_of(err.value.trailing_metadata()) == "trace-43"
        stream = stub.ExplainStream(pb.ExplainRequest(pair="nope"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stream:
                pass
        assert rid_of(err.value.trailing_metadata())


async def test_sdk_errors_carry_the_request_id(app: App) -> None:
    async with AsyncClient(f"127.0.0.1:{app.port}") as c:
        with pytest.raises(NotFound) as err:
            await c.predict("nope", np.zeros((1, 1, 8, 8), np.float32))
    assert err.value.request_id is not None and len(err.value.request_id) == 16
