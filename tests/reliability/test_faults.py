"""Fault isolation: a model run that raises fails only its batch; files that vanish after start-up
do not matter; a corrupt file at start-up stops ``sisguard serve`` with one clear line."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from reliability.faulty import POISON
from reliability.procs import ServerProcess, wait_exit
from support.server import running, write_config

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import to_tensor

RUNTIME = {"providers": ["cpu"], "intra_op_threads": 1}


def pair(name: str, dense: Path, pruned: Path) -> dict[str, object]:
    return {"name": name, "dense": str(dense), "pruned": str(pruned), "max_batch_size": 8}


def rows(n: int, poison: bool = False, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)
    if poison:
        x[0, 0, 0, 0] = POISON * 10
    return x


async def call(stub: pb_grpc.SISGuardStub, pair_name: str, x: np.ndarray, variant: int) -> grpc.StatusCode:
    try:
        await stub.Predict(pb.PredictRequest(pair=pair_name, inputs=to_tensor(x), variant=variant), timeout=30)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return resp.status


async def test_a_failing_model_run_fails_only_its_batch(
    tmp_path: Path, model_pair: tuple[Path, Path], faulty_onnx: Path
) -> None:
    dense, pruned = model_pair
    config = write_config(tmp_path, [pair("faulty", faulty_onnx, pruned), pair("mini", dense, pruned)], runtime=RUNTIME)
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        # Alone in its batch, a poisoned request fails with INTERNAL and a generic message.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Predict(pb.PredictRequest(pair="faulty", inputs=to_tensor(rows(2, True)), variant=pb.DENSE))
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "request id" in err.value.details() and "Reshape" not in err.value.details()
        infer = ip.ModelInferRequest(model_name="faulty.dense")
        infer.inputs.add(name="input", datatype="FP32", shape=[1, 1, 8, 8])
        infer.raw_input_contents.append(rows(1, True).tobytes())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(infer)
        assert err.value.code() == grpc.StatusCode.INTERNAL

        # Under concurrent load: poisoned requests, clean requests to the same model (which may
        # share a poisoned batch), to the other variant of the pair, and to the other pair.
        jobs: list[tuple[str, asyncio.Task[grpc.StatusCode]]] = []
        for i in range(60):
            kind = ("poison", "same-model", "other-variant", "other-pair")[i % 4]
            if kind == "poison":
                coro = call(stub, "faulty", rows(1, True, i), pb.DENSE)
            elif kind == "same-model":
                coro = call(stub, "faulty", rows(1, False, i), pb.DENSE)
            elif kind == "other-variant":
                coro = call(stub, "faulty", rows(3, False, i), pb.PRUNED)
            else:
                coro = call(stub, "mini", rows(3, False, i), pb.BOTH)
            jobs.append((kind, asyncio.create_task(coro)))
        results = [(kind, await task) for kind, task in jobs]
        by_kind: dict[str, set[grpc.StatusCode]] = {}
        for kind, code in results:
            by_kind.setdefault(kind, set()).add(code)
        assert by_kind["poison"] == {grpc.StatusCode.INTERNAL}
        assert by_kind["same-model"] <= {grpc.StatusCode.OK, grpc.StatusCode.INTERNAL}
        assert by_kind["other-variant"] == {grpc.StatusCode.OK}
        assert by_kind["other-pair"] == {grpc.StatusCode.OK}

        # The server stays SERVING and the failing model recovers for clean requests.
        for service in ("", "sisguard.v1.SISGuard"):
            assert await health_of(ch, service) == health_pb2.HealthCheckResponse.SERVING
        for i in range(5):
            assert await call(stub, "faulty", rows(4, False, 100 + i), pb.BOTH) == grpc.StatusCode.OK


async def test_model_files_deleted_after_start_up_do_not_matter(tmp_path: Path, model_pair: tuple[Path, Path]) -> None:
    files = tmp_path / "models"
    files.mkdir()
    dense, pruned = (Path(shutil.copy(p, files / p.name)) for p in model_pair)
    config = write_config(tmp_path, [pair("mini", dense, pruned)], runtime=RUNTIME)
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        before = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(rows(4))))
        shutil.rmtree(files)
        after = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(rows(4))))
        assert before.dense.probabilities.data == after.dense.probabilities.data
        listed = await stub.ListModels(pb.ListModelsRequest())
        assert listed.pairs[0].dense.sha256 and listed.pairs[0].pruned.ready
        assert await health_of(ch) == health_pb2.HealthCheckResponse.SERVING


def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _garbage(src: Path, dst: Path) -> Path:
    dst.write_bytes(np.random.default_rng(0).bytes(4096))
    return dst


def _empty(src: Path, dst: Path) -> Path:
    dst.write_bytes(b"")
    return dst


@pytest.mark.parametrize("corrupt", [_truncated, _garbage, _empty], ids=["truncated", "garbage", "empty"])
def test_a_corrupt_model_file_stops_the_start_with_one_clear_line(
    tmp_path: Path, model_pair: tuple[Path, Path], corrupt
) -> None:
    dense, pruned = model_pair
    bad = corrupt(pruned, tmp_path / "pruned-corrupt.onnx")
    config = write_config(tmp_path, [pair("mini", dense, bad)], runtime=RUNTIME)
    server = ServerProcess(config)
    code = wait_exit(server, 120)
    server.stop()
    assert code is not None and code != 0
    errors = [line for line in server.lines if line.startswith("sisguard: error:")]
    assert len(errors) == 1, server.stderr
    assert str(bad) in errors[0]
    assert "Traceback" not in server.stderr
