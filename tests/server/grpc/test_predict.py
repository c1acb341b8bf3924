"""Predict, ListModels, health and reflection against a real grpc.aio server with ONNX Runtime."""

from __future__ import annotations

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import from_tensor, to_tensor


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
async def stub(app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.SISGuardStub(channel)


def reference(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return softmax(sess.run(None, {"input": x})[0])


async def test_predict_both_matches_onnxruntime(stub, model_pair) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((13, 1, 8, 8), dtype=np.float32)  # more rows than max_batch_size=8
    resp = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(x), variant=pb.BOTH))
    dense = from_tensor(resp.dense.probabilities, "d", 10**6)
    pruned = from_tensor(resp.pruned.probabilities, "p", 10**6)
    np.testing.assert_allclose(dense, reference(model_pair[0], x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pruned, reference(model_pair[1], x), rtol=1e-5, atol=1e-6)
    assert list(resp.dense.top1) == dense.argmax(1).tolist()
    assert list(resp.top1_agree) == (dense.argmax(1) == pruned.argmax(1)).tolist()
    gap = dense.max(1) - pruned[np.arange(13), dense.argmax(1)]
    np.testing.assert_allclose(resp.confidence_gap, gap, atol=1e-6)
    assert resp.request_id


@pytest.mark.parametrize(("variant", "dense", "pruned"), [(pb.DENSE, True, False), (pb.PRUNED, False, True)])
async def test_predict_single_variant(stub, variant, dense, pruned) -> None:
    x = np.zeros((2, 1, 8, 8), np.float32)
    resp = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(x), variant=variant))
    assert resp.HasField("dense") is dense
    assert resp.HasField("pruned") is pruned
    assert len(resp.top1_agree) == 0


async def test_list_models_reports_files_and_providers(stub, model_pair) -> None:
    import hashlib

    resp = await stub.ListModels(pb.ListModelsRequest())
    (info,) = resp.pairs
    assert info.name == "mini"
    assert list(info.input_shape) == [1, 8, 8]
    assert info.input_dtype == pb.FLOAT32
    assert info.output_kind == pb.LOGITS
    assert info.num_outputs == 10
    assert info.dense.sha256 == hashlib.sha256(model_pair[0].read_bytes()).hexdigest()
    assert info.pruned.execution_provider == "CPUExecutionProvider"
    assert info.dense.parameter_count == info.pruned.parameter_count > 0
    assert info.pruned.nonzero_parameter_count < info.dense.nonzero_parameter_count
    assert 0.5 < info.prune_ratio < 0.65  # 60% of the weights (biases untouched)
    assert info.dense.infer_name == "mini.dense"


async def test_health_serving_per_service(app) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        h = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sisguard.v1.SISGuard", "inference.GRPCInferenceService"):
            resp = await h.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services(app) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = set()
        async for resp in call:
            names = {s.name for s in resp.list_services_response.service}
            break
    assert {"sisguard.v1.SISGuard", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names


async def test_list_models_reports_explain_and_image_defaults(stub) -> None:
    (info,) = (await stub.ListModels(pb.ListModelsRequest())).pairs
    assert info.explain_defaults.features == pb.ELEMENT
    assert info.explain_defaults.num_features == 64
    assert info.image.scale == pytest.approx(1 / 255)
    assert info.image.invert is False


async def test_health_is_not_serving_until_every_model_is_loaded(pair_config, monkeypatch) -> None:
    import asyncio
    import threading

    from sisguard.server.app import App
    from sisguard.server.config import load_settings
    from sisguard.server.core.dataplane import DataPlane

    gate = threading.Event()
    real_load = DataPlane.load

    def slow_load(self: DataPlane) -> None:
        gate.wait(10)
        real_load(self)

    monkeypatch.setattr(DataPlane, "load", slow_load)
    app = App(load_settings(pair_config))
    starting = asyncio.create_task(app.start())
    try:
        for _ in range(100):  # the port is bound before the models load
            if app.port:
                break
            await asyncio.sleep(0.02)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            h = health_pb2_grpc.HealthStub(channel)
            status = (await h.Check(health_pb2.HealthCheckRequest(service=""))).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.SISGuardStub(channel).Predict(
                    pb.PredictRequest(pair="mini", inputs=to_tensor(np.zeros((1, 1, 8, 8), np.float32)))
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            gate.set()
            await starting
            status = (await h.Check(health_pb2.HealthCheckRequest(service="sisguard.v1.SISGuard"))).status
            assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        gate.set()
        await starting
        await app.stop(grace=0.1)
