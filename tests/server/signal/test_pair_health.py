"""The verdict end to end: a real server, real ONNX models whose damage is known, live Predict
traffic sampled into shift probes and shadow explanations, PairHealth over gRPC, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from support.server import running, write_config

from sisguard.client import AsyncClient, NotFound
from sisguard.client.cli import main
from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.server.config import ConfigError, load_settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.runtime.model import ModelLoadError


def grid_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 5, size=(n, 1, 8, 8)) / 4.0).astype(np.float32)


def pair(name: str, dense: Path, pruned: Path, control: Path | None, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "dense": str(dense),
        "pruned": str(pruned),
        "output_kind": "logits",
        "max_batch_size": 16,
        "explain": {"threshold": 0.9, "threshold_relative": True},
        "shadow": {
            "sample_rate": 1.0,
            "max_per_second": 1000.0,
            "queue_size": 64,
            "noise_probe": {"sample_rate": 0.0},
            "shift_probe": {
                "sample_rate": 1.0, "max_per_second": 1000.0, "queue_size": 256, "value_range": [0.0, 1.0],
                "shifts": [{"kind": "uniform", "level": 0.05, "copies": 8}],
            },
        },
        "verdict": {"min_samples": 20, "update_seconds": 0.05, "bootstrap": 300,
                    "margins": {"instability/*": 0.05, "output_tv": 0.05}},
        **extra,
    }
    if control is not None:
        cfg["control"] = str(control)
    return cfg


async def until(condition, timeout: float = 60.0) -> None:
    """Wait for a condition the background work makes true (bounded; fails the test on timeout)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_verdicts_follow_known_damage_and_reach_metrics_the_sdk_and_the_cli(
    tmp_path: Path, signal_models, capsys
) -> None:
    m = signal_models
    config = write_config(
        tmp_path,
        [pair("same", m["dense"], m["copy"], m["copy"]), pair("fragile", m["dense"], m["fragile"], m["copy"])],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )
    async with running(config) as app, AsyncClient(f"127.0.0.1:{app.port}", timeout=30) as client:
        before = await client.pair_health("fragile")
        assert before.verdict == "insufficient_data" and before.samples_needed == 20
        rows = grid_rows(40)
        for name in ("same", "fragile"):
            for i in range(0, 40, 8):
                await client.predict(name, rows[i : i + 8])
        signals = app.dataplane.signals
        await until(lambda: all(signals[n].samples("instability/uniform-0.05") >= 40 for n in signals))
        same, fragile = await client.pair_health("same"), await client.pair_health("fragile")
        assert same.verdict == "healthy", same
        assert fragile.verdict == "damaged", fragile
        decided = {e.name: e for e in fragile.measures if e.damaged}
        assert "instability/uniform-0.05" in decided and decided["instability/uniform-0.05"].lower > 0.05
        assert same.reference == fragile.reference == "control"
        info = {p.name: p for p in await client.models()}
        assert info["fragile"].control is not None and info["fragile"].control.infer_name == "fragile.control"
        assert info["fragile"].verdict_reference == "control"
        with pytest.raises(NotFound):
            await client.pair_health("nope")
        # the control is a model of the Open Inference Protocol too
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            oip = ip_grpc.GRPCInferenceServiceStub(channel)
            assert (await oip.ModelReady(ip.ModelReadyRequest(name="fragile.control"))).ready
            meta = await oip.ModelMetadata(ip.ModelMetadataRequest(name="fragile.control"))
            assert meta.name == "fragile.control" and list(meta.inputs[0].shape)[1:] == [1, 8, 8]

        def exported(name: str, verdict: str) -> float | None:
            return app.registry.get_sample_value("sisguard_pair_verdict", {"pair": name, "verdict": verdict})

        await until(lambda: exported("fragile", "damaged") == 1.0 and exported("same", "healthy") == 1.0)
        assert exported("fragile", "healthy") == 0.0 and exported("fragile", "insufficient_data") == 0.0
        lower = app.registry.get_sample_value(
            "sisguard_rationale_excess",
            {"pair": "fragile", "measure": "instability/uniform-0.05", "bound": "lower"},
        )
        assert lower is not None and lower > 0.05
        # shadow explanations ran the control too and fed the explanation measures
        await until(lambda: signals["fragile"].samples("cross_insufficiency") > 0)

        # the CLI: the verdict in words and in the exit status (0 healthy, 3 damaged)
        address = ["--target-address", f"127.0.0.1:{app.port}"]
        assert await asyncio.to_thread(main, ["health", "fragile", *address]) == 3
        out = capsys.readouterr().out
        assert out.startswith("fragile: DAMAGED  (against the control;") and "instability/uniform-0.05" in out
        assert await asyncio.to_thread(main, ["health", "same", "--json", *address]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["verdict"] == "healthy" and {m["name"] for m in doc["measures"]} >= {"output_tv"}
        assert await asyncio.to_thread(main, ["health", "nope", *address]) != 0
        assert "nope" in capsys.readouterr().err


def test_a_control_whose_signature_differs_stops_start_up_naming_the_file(tmp_path: Path, signal_models) -> None:
    from support.models import export, mlp

    other = export(mlp((1, 4, 4), 10), tmp_path / "other.onnx", (1, 4, 4))
    m = signal_models
    settings = load_settings(write_config(tmp_path, [pair("p", m["dense"], m["copy"], other)]))
    with pytest.raises(ModelLoadError, match=r"other\.onnx: input shape .* differs from the dense model"):
        DataPlane(settings).load()


@pytest.mark.parametrize(
    ("verdict", "message"),
    [
        ({"margins": {"iou": 0.1}}, "unknown measure 'iou'"),
        ({"margins": {"output_tv": -1}}, "margin of output_tv"),
        ({"confidence": 1.5}, "confidence"),
        ({"window": 1}, "window"),
        ({"min_samples": 0}, "min_samples"),
    ],
)
def test_verdict_settings_out_of_range_are_refused_at_start_up(
    tmp_path: Path, signal_models, verdict: dict[str, Any], message: str
) -> None:
    m = signal_models
    cfg = pair("p", m["dense"], m["copy"], m["copy"])
    cfg["verdict"] = verdict
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(tmp_path, [cfg]))
