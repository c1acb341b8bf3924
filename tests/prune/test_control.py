"""The control model: the dense model retrained exactly like the pruned one, with nothing pruned."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from sisguard.prune.cli import main
from sisguard.prune.export import export_onnx
from sisguard.prune.models import digits_cnn
from sisguard.prune.pipeline import PruneConfig, prune_and_retrain, retrain_control, run_prune, seed_everything
from sisguard.prune.train import TrainConfig

TINY = PruneConfig(method="wt", ratio=0.5, cycles=2, train=TrainConfig(epochs=1, lr=3e-3),
                   retrain=TrainConfig(epochs=1, lr=1e-3))


@pytest.fixture(scope="module")
def dense(digits) -> torch.nn.Module:
    from sisguard.prune.pipeline import train_dense

    seed_everything(0)
    model = digits_cnn()
    train_dense(model, digits, TINY, None)
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_control_is_reproducible_and_differs_from_dense(dense, digits, tmp_path: Path) -> None:
    before = copy.deepcopy(dense.state_dict())
    first = retrain_control(dense, digits, TINY, None)
    second = retrain_control(dense, digits, TINY, None)
    other = retrain_control(dense, digits, TINY, None, seed=1)
    assert all(torch.equal(before[k], v) for k, v in dense.state_dict().items())  # dense left untouched
    assert _same_weights(first, second)
    assert not _same_weights(first, dense)
    assert not _same_weights(first, other)
    for name, model in (("a", first), ("b", second), ("c", other)):
        export_onnx(model, digits.input_shape, tmp_path / f"{name}.onnx")
    assert _sha(tmp_path / "a.onnx") == _sha(tmp_path / "b.onnx")
    assert _sha(tmp_path / "a.onnx") != _sha(tmp_path / "c.onnx")


def test_control_is_the_pruned_path_with_nothing_pruned(dense, digits) -> None:
    # WT at a ratio too small to remove one weight keeps every mask at 1: the pruned model then
    # goes through exactly the control's retraining (same cycles, epochs, schedule and seeds)
    nothing = PruneConfig(method="wt", ratio=1e-6, cycles=TINY.cycles, train=TINY.train, retrain=TINY.retrain)
    pruned, _ = prune_and_retrain(dense, digits, nothing, None)
    assert _same_weights(pruned, retrain_control(dense, digits, nothing, None))


def test_run_prune_writes_the_control_into_manifest_and_pair_yaml(digits, tmp_path: Path) -> None:
    seed_everything(0)
    manifest = run_prune(digits_cnn(), digits, TINY, tmp_path, name="tiny", control_seed=3)
    block = (tmp_path / "pair.yaml").read_text()
    entry = yaml.safe_load(block)[0]
    assert entry["control"] == "control.onnx"
    assert entry["control_sha256"] == _sha(tmp_path / "control.onnx")
    assert entry["dense_sha256"] == _sha(tmp_path / "dense.onnx")
    assert manifest["files"]["control.onnx"]["sha256"] == entry["control_sha256"]
    assert manifest["files"]["control.onnx"]["max_abs_diff_vs_torch"] < 1e-3
    assert manifest["control"]["seed"] == 3 and manifest["control"]["ratio"] == 0.0
    assert 0.0 < manifest["accuracy"]["control"]["onnx"] <= 1.0
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written["accuracy"]["control"] == manifest["accuracy"]["control"]
    assert len({_sha(tmp_path / f) for f in ("dense.onnx", "pruned.onnx", "control.onnx")}) == 3
    from sisguard.server.config import load_settings

    config = tmp_path / "server.yaml"
    config.write_text("pairs:\n" + "".join(f"  {line}\n" for line in block.splitlines()))
    (pair,) = load_settings(config).pairs
    assert pair.control == (tmp_path / "control.onnx").resolve() and pair.control_sha256 == entry["control_sha256"]


def test_no_control_writes_none(digits, tmp_path: Path) -> None:
    (tmp_path / "control.onnx").write_bytes(b"stale")
    seed_everything(0)
    manifest = run_prune(digits_cnn(), digits, TINY, tmp_path, name="tiny", control=False)
    entry = yaml.safe_load((tmp_path / "pair.yaml").read_text())[0]
    assert "control" not in entry and "control_sha256" not in entry
    assert manifest["control"] is None and "control" not in manifest["accuracy"]
    assert not (tmp_path / "control.onnx").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--no-control", "--control-seed", "1"], "--control-seed needs a control"),
     (["--control-seed", "-1"], "--control-seed must be >= 0")],
)
def test_bad_control_options_exit_2(extra: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prune", "--arch", "digits_cnn", "--method", "ft", "--ratio", "0.5", "--out", str(tmp_path / "o"),
                 "--cycles", "1", "--epochs", "1", "--retrain-epochs", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
