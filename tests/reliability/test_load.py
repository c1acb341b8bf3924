"""The short CI version of the load test: ``bench/load.py`` for a few seconds against a spawned
server serving the test pair. Checks outcomes, never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.server import write_config

ROOT = Path(__file__).resolve().parents[2]



@pytest.mark.parametrize(
    "duration", [15, pytest.param(180, marks=pytest.mark.slow)], ids=["short", "three-minutes"]
)
def test_load_run(tmp_path: Path, model_pair: tuple[Path, Path], duration: int) -> None:
    dense, pruned = model_pair
    config = write_config(
        tmp_path,
        [
            {
                "name": "mini",
                "dense": str(dense),
                "pruned": str(pruned),
                "max_batch_size": 32,
                "explain": {"threshold": 0.5, "threshold_relative": True, "max_evaluations": 20000},
            }
        ],
        runtime={"providers": ["cpu"]},
        limits={"max_concurrent_explanations": 4},  # low, so overload (RESOURCE_EXHAUSTED) happens too
        grace_seconds=5,
    )
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--config", str(config), "--duration", str(duration)]
    cmd += ["--clients", "16", "--warmup", "3", "--json", str(out), "--server-log", str(tmp_path / "server.log")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 240)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (tmp_path / "server.log").read_text()
    report = json.loads(out.read_text())
    assert report["unexpected"] == {}
    assert report["server_exit_status"] == 0
    for op in ("Predict", "Explain", "ExplainStream"):
        assert report["ops"][op]["codes"].get("OK", 0) > 0, op
        assert set(report["ops"][op]["codes"]) <= {"OK", "RESOURCE_EXHAUSTED"}
    assert report["stream_events"] >= report["ops"]["ExplainStream"]["codes"]["OK"]  # a result per stream at least
    rss = report["rss_bytes"]
    assert rss["after_warmup"] and rss["end"]
    assert report["rss_growth"] < 0.5  # a guard against runaway leaks; the soak run measures the real figure
