"""The prune/evaluate CLI: bad input fails early with exit 2, a tiny run goes end to end."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sisguard.prune.cli import add_subcommands, main

TINY = ["--cycles", "1", "--epochs", "1", "--retrain-epochs", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "--arch", "digits_cnn", "--method", "xx", "--ratio", "0.5"], "unknown prune method"),
        (["prune", "--arch", "digits_cnn", "--method", "ft", "--ratio", "1.5"], "between 0 and 1"),
        (["prune", "--arch", "digits_cnn", "--method", "wt", "--ratio", "0"], "between 0 and 1"),
        (["prune", "--arch", "vgg", "--method", "ft", "--ratio", "0.5"], "unknown architecture"),
        (["prune", "--model", "prune_models_for_tests:grouped_conv_net", "--method", "ft", "--ratio", "0.5"],
         "grouped convolution"),
        (["prune", "--model", "prune_models_for_tests:concat_net", "--method", "ft", "--ratio", "0.5"], "'cat'"),
        (["prune", "--model", "no_such_module_xyz:f", "--method", "ft", "--ratio", "0.5"], "cannot import"),
        (["prune", "--arch", "digits_cnn", "--data", "synthetic32", "--synthetic-n", "40", "--method", "ft",
          "--ratio", "0.5"], "does not fit"),
        (["prune", "--arch", "digits_cnn", "--data", "nope.npz", "--method", "ft", "--ratio", "0.5"], "does not exist"),
        (["prune", "--arch", "digits_cnn", "--method", "ft", "--ratio", "0.9999"], "cannot reach"),
        (["evaluate", "--arch", "digits_cnn", "--ratios", "0.5,2"], "between 0 and 1"),
        (["evaluate", "--arch", "digits_cnn", "--methods", "ft,magic"], "unknown prune method"),
        (["evaluate", "--pair", "/nonexistent/dir"], "not a pair directory"),
    ],
)
def test_bad_input_fails_before_training(argv: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*argv, "--out", str(tmp_path / "out"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "epoch" not in err
    assert not (tmp_path / "out" / "dense.onnx").exists()


def test_subcommands_register_on_a_foreign_parser() -> None:
    parser = argparse.ArgumentParser(prog="sisguard")
    add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prune", "--arch", "digits_cnn", "--method", "ft", "--ratio", "0.5", "--out", "x"])
    assert callable(args.func) and args.ratio == 0.5
    args = parser.parse_args(["evaluate", "--pair", "a", "--pair", "b", "--out", "r"])
    assert args.pair == ["a", "b"] and callable(args.func)


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    return subprocess.run([sys.executable, "-m", "sisguard.prune", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def test_prune_then_evaluate_end_to_end(tmp_path: Path) -> None:
    pair = tmp_path / "pair"
    done = _run("prune", "--arch", "digits_cnn", "--data", "digits", "--method", "ft", "--ratio", "0.5",
                "--out", str(pair), "--name", "tiny", *TINY, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "epoch 1/1" in done.stderr  # progress on stderr
    manifest = json.loads((pair / "manifest.json").read_text())
    assert abs(manifest["ratio"] - 0.5) < 0.01
    assert manifest["params"]["pruned"] < manifest["params"]["dense"]
    assert manifest["flops"]["pruned"] < manifest["flops"]["dense"]
    block = (pair / "pair.yaml").read_text()
    assert block.startswith("- name: tiny\n")
    for name in ("dense", "pruned"):
        digest = hashlib.sha256((pair / f"{name}.onnx").read_bytes()).hexdigest()
        assert f"{name}_sha256: {digest}" in block
        assert manifest["files"][f"{name}.onnx"]["sha256"] == digest

    report = tmp_path / "report"
    done = _run("evaluate", "--pair", str(pair), "--data", "digits", "--sis-samples", "2", "--out", str(report),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((report / "report.json").read_text())
    assert [m["name"] for m in result["models"]] == ["tiny"]
    assert set(result["prune_potential"]) == {"ft"}
    assert (report / "report.md").is_file() and (report / "prune_potential.png").is_file()


def test_evaluate_builds_a_family_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--arch", "digits_cnn", "--methods", "ft,wt", "--ratios", "0.6", "--sis-samples", "0",
                 "--out", str(tmp_path), "-q", *TINY])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "report.json").read_text())
    assert sorted(m["name"] for m in result["models"]) == ["ft-0.60", "wt-0.60"]
    # one dense model shared by the family
    shas = {json.loads((tmp_path / "models" / n / "manifest.json").read_text())["files"]["dense.onnx"]["sha256"]
            for n in ("ft-0.60", "wt-0.60")}
    assert len(shas) == 1
