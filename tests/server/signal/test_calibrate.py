"""`sisguard calibrate`: the control floor measured offline, then used by a pair without a control."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from sisguard.client.cli import main
from sisguard.server.config import load_settings
from sisguard.server.core.dataplane import DataPlane


def _config(tmp: Path, m: dict[str, Path], **pair: object) -> Path:
    cfg = {"pairs": [{"name": "p", "dense": str(m["dense"]), "pruned": str(m["fragile"]), "output_kind": "logits",
                      "explain": {"threshold": 0.9, "threshold_relative": True},
                      "shadow": {"shift_probe": {"value_range": [0, 1],
                                                 "shifts": [{"kind": "uniform", "level": 0.05, "copies": 4}]}},
                      **pair}]}
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_calibrate_writes_the_floor_and_a_pair_without_control_uses_it(tmp_path: Path, signal_models, capsys) -> None:
    m = signal_models
    rows = (np.random.default_rng(0).integers(0, 5, size=(12, 1, 8, 8)) / 4.0).astype(np.float32)
    np.savez(tmp_path / "held.npz", x=rows)
    out = tmp_path / "cal.json"
    code = main(["calibrate", "--config", str(_config(tmp_path, m, control=str(m["copy"]))), "--pair", "p",
                 "--data", str(tmp_path / "held.npz"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["inputs"] == 12
    inst = doc["measures"]["instability/uniform-0.05"]
    assert inst["n"] == 12 and inst["control_mean"] == 0.0  # the control is the dense model itself
    assert inst["pruned_mean"] > 0.5 and inst["excess"] == inst["pruned_mean"]  # off the grid, fragile flips
    assert doc["measures"]["output_tv"]["control_mean"] == 0.0
    assert set(inst["samples_needed"]) == {"0.01", "0.02", "0.05"}

    settings = load_settings(_config(tmp_path, m, calibration_file=str(out)))
    service = DataPlane(settings)
    service.load()
    signal = service.signals["p"]
    assert signal.reference == "calibration" and "output_tv" in signal.margins


def test_calibrate_refuses_bad_input_in_one_line(tmp_path: Path, signal_models, capsys) -> None:
    m = signal_models
    config = _config(tmp_path, m)  # no control
    np.savez(tmp_path / "held.npz", y=np.zeros(3))
    args = ["calibrate", "--config", str(config), "--pair", "p", "--data", str(tmp_path / "held.npz"),
            "--out", str(tmp_path / "o.json")]
    assert main(args) == 2
    assert "has no control" in capsys.readouterr().err
    config = _config(tmp_path, m, control=str(m["copy"]))
    assert main([*args[:2], str(config), *args[3:]]) == 2
    err = capsys.readouterr().err
    assert "expected 'x' or 'x_test'" in err and err.count("\n") == 1
    assert main(["calibrate", "--config", str(config), "--pair", "nope", "--data", "x.npz", "--out", "o.json"]) == 2
    assert "no pair 'nope'" in capsys.readouterr().err
