"""evaluate_family on known cases: a "pruned" model identical to the dense one, and the report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sisguard.prune.errors import PruneError
from sisguard.prune.evaluate import ModelEntry, evaluate_family
from sisguard.prune.report import write_report
from sisguard.prune.shifts import Shift

PAIR = Path(__file__).resolve().parents[2] / "server" / "models" / "digits"
SHIFTS = [Shift("clean"), Shift("gaussian", 0.1), Shift("blur", 0.8)]


@pytest.fixture(scope="module")
def identical_result(digits) -> dict:
    entries = [ModelEntry("copy", "ft", 0.5, PAIR / "dense.onnx"), ModelEntry("ft", "ft", 0.499, PAIR / "pruned.onnx")]
    return evaluate_family(PAIR / "dense.onnx", entries, digits, shifts=SHIFTS, sis_samples=3)


def test_identical_model_has_full_agreement_and_no_excess_error(identical_result: dict) -> None:
    copy = next(m for m in identical_result["models"] if m["name"] == "copy")
    assert copy["errors"] == identical_result["dense"]["errors"]
    assert all(v == 0.0 for v in copy["excess_error"].values())
    for per_shift in copy["functional"].values():
        assert per_shift["top1_agreement"] == 1.0 and per_shift["softmax_tv"] == 0.0
    assert copy["rationale"]["iou"] == 1.0
    assert copy["rationale"]["dense_to_pruned"] == 1.0 and copy["rationale"]["pruned_to_dense"] == 1.0
    # the identical copy (ratio 0.5) is always within δ, but the potential is monotone: it reaches 0.5
    # only where the real pruned model below it (ratio 0.499) qualifies too, and is 0 elsewhere
    ft = next(m for m in identical_result["models"] if m["name"] == "ft")
    dense = identical_result["dense"]["errors"]
    expected = {s: 0.5 if ft["errors"][s] <= dense[s] + 0.005 else 0.0 for s in dense}
    assert identical_result["prune_potential"]["ft"] == expected


def test_bundled_pair_agrees_closely(identical_result: dict) -> None:
    ft = next(m for m in identical_result["models"] if m["name"] == "ft")
    assert ft["functional"]["clean"]["top1_agreement"] > 0.95
    assert 0.0 <= ft["rationale"]["iou"] <= 1.0
    assert ft["rationale"]["compared"] == 3


def test_report_files(identical_result: dict, tmp_path: Path) -> None:
    md = write_report(identical_result, tmp_path)
    assert md.read_text().startswith("# Pruning evaluation")
    assert json.loads((tmp_path / "report.json").read_text())["shifts"] == ["clean", "gaussian-0.1", "blur-0.8"]
    for name in ("prune_potential.png", "error_vs_ratio.png", "agreement_vs_ratio.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_family_is_refused(digits) -> None:
    with pytest.raises(PruneError, match="does not exist"):
        evaluate_family(PAIR / "dense.onnx", [ModelEntry("x", "ft", 0.5, "missing.onnx")], digits)
    with pytest.raises(PruneError, match="unique"):
        evaluate_family(PAIR / "dense.onnx", [ModelEntry("x", "ft", 0.5, PAIR / "pruned.onnx")] * 2, digits)
