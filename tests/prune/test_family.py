"""The model family and its ground truth: labelling rules on constructed cases, a tiny real build, cache, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from sisguard.prune.cli import main
from sisguard.prune.errors import PruneError
from sisguard.prune.family import (
    FamilyConfig,
    ground_truth,
    label_is_robust,
    label_of,
    make_config,
    make_family,
    paired_difference,
)
from sisguard.prune.train import TrainConfig


@pytest.mark.parametrize(
    ("excess", "label"),
    [
        ({"blur": 0.0, "brightness": 0.0}, "healthy"),
        ({"blur": 0.5, "brightness": -3.0}, "healthy"),     # ≤ 0.5 everywhere; better than dense counts
        ({"blur": 0.6, "brightness": 0.0}, "grey"),
        ({"blur": 1.99, "brightness": 1.0}, "grey"),
        ({"blur": 2.0, "brightness": -5.0}, "damaged"),     # ≥ 2 under one shift is enough
        ({"blur": 0.0, "brightness": 4.2}, "damaged"),
    ],
)
def test_label_rules(excess: dict[str, float], label: str) -> None:
    assert label_of(excess) == label


def test_label_robustness_counts_one_standard_error() -> None:
    assert label_is_robust({"a": 3.0}, {"a": 0.5})            # 2.5 … 3.5: damaged either way
    assert not label_is_robust({"a": 2.2}, {"a": 0.5})        # 1.7 would be grey
    assert label_is_robust({"a": 0.1, "b": -1.0}, {"a": 0.3, "b": 1.0})
    assert not label_is_robust({"a": 0.1, "b": -1.0}, {"a": 0.3, "b": 2.0})  # -1 + 2 would be grey
    assert not label_is_robust({"a": 0.4}, {"a": 0.3})        # 0.7 would be grey
    with pytest.raises(PruneError, match="at least one shift"):
        label_of({})


def test_paired_difference_averages_draws_per_image() -> None:
    a = np.array([[1, 0, 0, 0], [1, 0, 0, 0]])
    b = np.zeros((2, 4), dtype=int)
    diff, se = paired_difference(a, b)
    assert diff == pytest.approx(25.0)
    assert se == pytest.approx(100 * np.std([1, 0, 0, 0], ddof=1) / 2)  # four images, not eight rows
    assert paired_difference(a, a) == (0.0, 0.0)
    with pytest.raises(PruneError, match="differ in shape"):
        paired_difference(a, b[:1])


def _wrong(n: int, errors: int, draws: int = 1) -> np.ndarray:
    row = np.zeros(n, dtype=bool)
    row[:errors] = True
    return np.tile(row, (draws, 1))


def test_ground_truth_on_constructed_errors() -> None:
    n = 1000
    dense = {"clean": _wrong(n, 20), "brightness-0.3": _wrong(n, 100), "blur-0.8": _wrong(n, 50)}
    wrong = {
        "dense": dense,
        "control": {"clean": _wrong(n, 20), "brightness-0.3": _wrong(n, 80), "blur-0.8": _wrong(n, 52)},
        # the WT 0.7: clean error equal to dense, +2.4 points under brightness
        "wt_0.7": {"clean": _wrong(n, 20), "brightness-0.3": _wrong(n, 124), "blur-0.8": _wrong(n, 50)},
        "healthy": {"clean": _wrong(n, 21), "brightness-0.3": _wrong(n, 102), "blur-0.8": _wrong(n, 53)},
        "grey": {"clean": _wrong(n, 20), "brightness-0.3": _wrong(n, 110), "blur-0.8": _wrong(n, 50)},
        "collapsed": {"clean": _wrong(n, 180), "brightness-0.3": _wrong(n, 90), "blur-0.8": _wrong(n, 200)},
    }
    gt = ground_truth(wrong, {"wt_0.7": {"kind": "pruned", "ratio": 0.7}}, FamilyConfig())
    models = gt["models"]
    assert gt["shifts"] == ["brightness-0.3", "blur-0.8"] and gt["n_test"] == n
    wt = models["wt_0.7"]
    assert wt["kind"] == "pruned" and wt["ratio"] == 0.7
    assert wt["shifts"]["brightness-0.3"]["excess_over_dense_pp"] == pytest.approx(2.4)
    assert wt["shifts"]["brightness-0.3"]["excess_over_control_pp"] == pytest.approx(4.4)
    assert wt["worst_shift"] == "brightness-0.3" and wt["worst_excess_over_dense_pp"] == pytest.approx(2.4)
    assert wt["label"] == "damaged" and wt["clean_within_tolerance"]
    assert wt["label_vs_control"] == "damaged"
    # a model the dense model's fragility hides: no worse than dense, 2 points worse than the control
    assert models["grey"]["label_vs_control"] == "damaged"
    assert models["control"]["label_vs_control"] == "healthy"
    assert models["healthy"]["label"] == "healthy" and models["healthy"]["clean_within_tolerance"]
    assert models["grey"]["label"] == "grey"
    collapsed = models["collapsed"]
    assert collapsed["label"] == "damaged" and not collapsed["clean_within_tolerance"]
    assert collapsed["clean_gap_vs_dense_pp"] == pytest.approx(16.0)
    # the paper's growth reading: brightness error grows 16 points less than the dense model's
    assert collapsed["shifts"]["brightness-0.3"]["growth_over_dense_pp"] == pytest.approx(-17.0)
    assert models["dense"]["label"] == "healthy" and models["dense"]["worst_excess_over_dense_pp"] == 0.0
    assert models["control"]["shifts"]["brightness-0.3"]["excess_over_dense_pp"] == pytest.approx(-2.0)
    with pytest.raises(PruneError, match="needs the control"):
        ground_truth({"dense": dense}, {}, FamilyConfig())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ratios": (0.5, 1.2)}, "between 0 and 1"),
        ({"methods": ("wt", "magic")}, "unknown prune method"),
        ({"arch": "vgg"}, "unknown architecture"),
        ({"shifts": ("fog-0.3",)}, "unknown shift kind"),
        ({"shifts": ("clean",)}, "clean is always evaluated"),
        ({"control_seeds": (1, 1)}, "distinct"),
        ({"healthy_pp": 3.0}, "must be below damaged_pp"),
        ({"data": "imagenet"}, "data"),
        ({"retrain": TrainConfig(epochs=-1)}, "epochs must be >= 0"),
        ({"n_trian": 5}, "n_trian"),
    ],
)
def test_bad_configuration_is_one_line(fields: dict, message: str) -> None:
    with pytest.raises(PruneError, match="bad family configuration") as info:
        make_config(**fields)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ratios", "0.5,x"], "comma-separated"),
        (["--ratios", "0"], "between 0 and 1"),
        (["--control-seeds", "0,1,2"], "two seeds"),
        (["--arch", "vgg"], "unknown architecture"),
        (["--data", "mnist"], "data"),
        (["--n-train", "5"], "n_train"),
    ],
)
def test_family_cli_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["family", "--out", str(tmp_path / "fam"), "--quick", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fam").exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TINY = {"methods": ("wt",), "ratios": (0.5,), "cycles": 1, "train": TrainConfig(epochs=1, lr=3e-3),
        "retrain": TrainConfig(epochs=1, lr=1e-3), "shifts": ("gaussian-0.1", "brightness-0.3"), "noise_draws": 2}


@pytest.mark.timeout(900)  # five small builds: well under a minute alone, longer on a shared machine
def test_tiny_family_end_to_end_and_cache(tmp_path: Path) -> None:
    out = tmp_path / "fam"
    lines: list[str] = []
    gt = make_family(make_config(**TINY), out, log=lines.append)
    assert any("epoch 1/1" in line for line in lines)
    for name in ("dense", "control", "control2", "wt_0.5"):
        assert (out / f"{name}.onnx").is_file()
        assert gt["models"][name]["sha256"] == _sha(out / f"{name}.onnx")
        assert gt["models"][name]["label"] in ("healthy", "grey", "damaged")
    assert len({_sha(out / f"{n}.onnx") for n in ("dense", "control", "control2", "wt_0.5")}) == 4
    assert gt["n_test"] == 797 and gt["data"]["n_train"] == 1000
    assert set(gt["models"]["wt_0.5"]["shifts"]) == {"gaussian-0.1", "brightness-0.3"}
    assert abs(gt["models"]["wt_0.5"]["ratio"] - 0.5) < 0.01
    assert (out / "ground_truth.md").read_text().count("| wt_0.5 |") == 1
    with np.load(out / "data.npz") as split:
        assert split["x_test"].shape == (797, 1, 8, 8)

    config = yaml.safe_load((out / "family.yaml").read_text())
    pairs = {p["name"]: p for p in config["pairs"]}
    assert set(pairs) == {"wt_0.5", "control2"}
    for pair in pairs.values():
        assert pair["dense"] == "dense.onnx" and pair["control"] == "control.onnx"  # relative paths
        for role in ("dense", "pruned", "control"):
            assert pair[f"{role}_sha256"] == _sha(out / pair[role])
    assert pairs["control2"]["pruned"] == "control2.onnx"
    from sisguard.server.config import load_settings

    served = {p.name: p for p in load_settings(out / "family.yaml").pairs}  # the server reads it as is
    assert served["wt_0.5"].control == (out / "control.onnx").resolve()
    assert served["control2"].pruned == (out / "control2.onnx").resolve()

    # same configuration: nothing retrained, same files
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")}
    lines.clear()
    again = make_family(make_config(**TINY), out, log=lines.append)
    assert again == gt and any("cached" in line for line in lines) and not any("epoch" in line for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.onnx")} == stamps

    # an interrupted build resumes: a lost pruned model is rebuilt alone, and comes out identical
    (out / "wt_0.5.onnx").unlink()
    lines.clear()
    resumed = make_family(make_config(**TINY), out, log=lines.append)
    assert resumed["models"]["wt_0.5"]["sha256"] == gt["models"]["wt_0.5"]["sha256"]
    assert not any("[dense]" in line or "[control]" in line for line in lines)

    # other shifts or thresholds: the models stay, only the ground truth is measured again
    lines.clear()
    relabelled = make_family(make_config(**{**TINY, "shifts": ("blur-0.8",), "damaged_pp": 1.0}), out, log=lines.append)
    assert relabelled["shifts"] == ["blur-0.8"] and relabelled["thresholds_pp"]["damaged"] == 1.0
    assert relabelled["models"]["wt_0.5"]["sha256"] == gt["models"]["wt_0.5"]["sha256"]
    assert not any("epoch" in line for line in lines)

    # another configuration of the models rebuilds (and removes the models the old one had)
    other = make_family(make_config(**{**TINY, "ratios": (0.6,)}), out, log=None)
    assert set(other["models"]) == {"dense", "control", "control2", "wt_0.6"}
    assert not (out / "wt_0.5.onnx").exists()
