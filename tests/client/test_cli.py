"""``sisguard models|predict|explain`` end to end against a real server of the digits pair."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sisguard.client.cli import main


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    samples = np.load(Path(str(files("sisguard.server"))) / "models" / "digits" / "samples.npz")
    return samples["x"], samples["y"]


@pytest.fixture
def one(tmp_path: Path, digits) -> Path:
    path = tmp_path / "digit.npy"
    np.save(path, digits[0][1])
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models(digits_server, capsys) -> None:
    code, out, _ = run(capsys, "models", "--target-address", digits_server.address)
    assert code == 0 and out.startswith("digits\n") and "[1, 8, 8] float32" in out
    code, out, _ = run(capsys, "models", "--target-address", digits_server.address, "--json")
    (pair,) = json.loads(out)["pairs"]
    assert pair["name"] == "digits" and pair["input_shape"] == [1, 8, 8]


def test_predict_npy_batch_and_single(digits_server, digits, tmp_path, capsys) -> None:
    x, y = digits
    np.save(tmp_path / "batch.npy", x[:6])
    code, out, _ = run(capsys, "predict", "digits", str(tmp_path / "batch.npy"), "--target-address",
                       digits_server.address, "--json")  # fmt: skip
    doc = json.loads(out)
    assert code == 0 and np.array(doc["dense"]["probabilities"]).shape == (6, 10)
    assert doc["labels"] == [str(i) for i in range(10)]
    assert (np.array(doc["dense"]["top1"]) == y[:6]).mean() >= 0.8
    code, out, _ = run(capsys, "predict", "digits", str(tmp_path / "batch.npy"), "--target-address",
                       digits_server.address)  # fmt: skip
    assert code == 0 and "6 inputs" in out and len(out.strip().splitlines()) == 8


def test_predict_png_is_resized_and_scaled(digits_server, digits, tmp_path, capsys) -> None:
    x, y = digits
    grey = (x[3, 0] * 255).round().astype(np.uint8)
    Image.fromarray(grey).resize((32, 32), Image.Resampling.NEAREST).save(tmp_path / "d.png")
    Image.fromarray(255 - grey).resize((32, 32), Image.Resampling.NEAREST).save(tmp_path / "paper.png")
    address = ["--target-address", digits_server.address, "--json"]
    _, out, _ = run(capsys, "predict", "digits", str(tmp_path / "d.png"), *address)
    assert json.loads(out)["dense"]["top1"] == [int(y[3])]
    _, out, _ = run(capsys, "predict", "digits", str(tmp_path / "paper.png"), "--invert", *address)
    assert json.loads(out)["dense"]["top1"] == [int(y[3])]


def test_explain_text(digits_server, one, capsys) -> None:
    code, out, _ = run(capsys, "explain", "digits", str(one), "--target-address", digits_server.address)
    assert code == 0
    assert "dense   found" in out and "pruned  found" in out and "IoU" in out
    assert "dense SIS keeps pruned" in out
    grid = [line.split() for line in out.splitlines() if line.strip() and set(line.strip()) <= {"#", ".", " "}]
    assert len(grid) == 8 and all(len(cells) == 2 and len(cells[0]) == 8 for cells in grid)  # dense | pruned


def test_explain_text_reports_no_iou_when_a_side_has_no_sis(digits_server, one, capsys) -> None:
    """Two NOT_CONFIDENT explanations are no evidence of agreement: no 'IoU 1.000' for them."""
    code, out, _ = run(capsys, "explain", "digits", str(one), "--threshold", "0.999999",
                       "--target-address", digits_server.address)
    assert code == 0
    assert "IoU n/a (dense not confident, pruned not confident)" in out and "IoU 1.000" not in out


def test_explain_json_options(digits_server, one, capsys) -> None:
    code, out, _ = run(capsys, "explain", "digits", str(one), "--target-address", digits_server.address, "--json",
                       "--features", "patch:2x2", "--max-sis", "2", "--threshold", "0.8", "--target", "0")  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["num_features"] == 16 and doc["target"] == 0 and doc["threshold"] == pytest.approx(0.8)
    mask = np.array(doc["dense"]["sis"][0]["mask"])
    assert mask.shape == (1, 8, 8) and mask.dtype == bool and mask.any()
    assert set(doc["agreement"]) >= {"iou_first", "dense_sis_sufficient_for_pruned", "top1_agree", "divergent"}


def test_explain_plot_png(digits_server, one, tmp_path, capsys) -> None:
    png = tmp_path / "rationale.png"
    code, out, _ = run(capsys, "explain", "digits", str(one), "--target-address", digits_server.address,
                       "--plot", str(png), "--max-sis", "2")  # fmt: skip
    assert code == 0 and f"picture written to {png}" in out
    with Image.open(png) as img:
        assert img.format == "PNG"
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    assert 800 <= width <= 1400 and 300 <= height <= 600  # three panels side by side
    assert pixels.std() > 20  # not a blank canvas
    # The overlay colours of the first SIS (orange) appear in the picture.
    orange = (pixels[..., 0] > 180) & (pixels[..., 1] < 140) & (pixels[..., 2] < 100)
    assert orange.sum() > 100


def test_explain_progress_bar_on_stderr(digits_server, digits, tmp_path, capsys) -> None:
    path = tmp_path / "d.npy"
    np.save(path, digits[0][5])
    code, _, err = run(capsys, "explain", "digits", str(path), "--target-address", digits_server.address,
                       "--features", "element", "--progress", "always")  # fmt: skip
    assert code == 0
    assert "dense [" in err and "left" in err and "evals" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "nope", "{npy}"], "unknown pair 'nope'"),
        (["predict", "digits", "{missing}"], "cannot read"),
        (["predict", "digits", "{txt}"], "expected a .npy file or an image"),
        (["explain", "digits", "{npy}", "--max-evaluations", "5"], "RESOURCE_EXHAUSTED"),
        (["explain", "digits", "{npy}", "--baseline", "purple"], "--baseline"),
        (["models", "--target-address", "127.0.0.1:1", "--timeout", "20"], "UNAVAILABLE] (server 127.0.0.1:1)"),
    ],
)
def test_errors_print_one_line(digits_server, one, tmp_path, capsys, argv, message) -> None:
    (tmp_path / "x.txt").write_text("hello")
    subs = {"{npy}": str(one), "{missing}": str(tmp_path / "missing.npy"), "{txt}": str(tmp_path / "x.txt")}
    args = [subs.get(a, a) for a in argv]
    if "--target-address" not in args:
        args += ["--target-address", digits_server.address]
    code, out, err = run(capsys, *args)
    assert code == 1 and out == ""
    assert err.startswith("sisguard: error: ") and err.count("\n") == 1 and message in err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "digits", "x.npy", "--features", "hexagons"])
    assert info.value.code == 2
    assert "patch:HxW" in capsys.readouterr().err


def test_installed_command_runs(digits_server, one) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sisguard.client.cli", "explain", "digits", str(one), "--json",
         "--target-address", digits_server.address],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pair"] == "digits"


def test_example_script_writes_pictures(digits_server, tmp_path) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "explain_digits.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--target-address", digits_server.address, "--count", "2",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pictures = sorted(tmp_path.glob("digit_*.png"))
    assert len(pictures) == 2 and all(p.stat().st_size > 5000 for p in pictures)
    assert proc.stdout.count("IoU") == 2
