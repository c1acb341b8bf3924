"""``sisguard evaluate --seeds``: one family per training seed, the prune potential's mean and interval over them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sisguard.prune.cli import main
from sisguard.prune.errors import PruneError
from sisguard.prune.evaluate import potential_over_seeds
from sisguard.prune.report import markdown_over_seeds

TINY = ["--cycles", "1", "--epochs", "1", "--retrain-epochs", "1"]


def _result(seed: int, potentials: dict[str, dict[str, float]]) -> dict:
    shifts = list(next(iter(potentials.values())))
    return {"seed": seed, "shifts": shifts, "delta_pp": 0.5, "data": {"name": "digits"},
            "prune_potential": potentials}


def test_potential_over_seeds_on_known_values() -> None:
    summary = potential_over_seeds([
        _result(0, {"ft": {"clean": 0.7, "blur-0.8": 0.0}, "wt": {"clean": 0.9, "blur-0.8": 0.5}}),
        _result(1, {"ft": {"clean": 0.9, "blur-0.8": 0.0}, "wt": {"clean": 0.9, "blur-0.8": 0.7}}),
        _result(2, {"ft": {"clean": 0.5, "blur-0.8": 0.3}, "wt": {"clean": 0.9, "blur-0.8": 0.9}}),
    ])
    assert summary["seeds"] == [0, 1, 2]
    ft = summary["prune_potential"]["ft"]["clean"]
    assert ft["values"] == [0.7, 0.9, 0.5] and ft["mean"] == pytest.approx(0.7)
    assert (ft["min"], ft["max"]) == (0.5, 0.9)
    assert ft["t_low"] < 0.5 and ft["t_high"] > 0.9  # three seeds: wider than their range
    same = summary["prune_potential"]["wt"]["clean"]
    assert same["t_low"] == pytest.approx(0.9) and same["t_high"] == pytest.approx(0.9)
    md = markdown_over_seeds(summary)
    assert "| FT | 0.70 [" in md and "(0.50–0.90)" in md
    with pytest.raises(PruneError, match="same methods and shifts"):
        potential_over_seeds([_result(0, {"ft": {"clean": 0.5}}), _result(1, {"wt": {"clean": 0.5}})])
    with pytest.raises(PruneError, match="at least one"):
        potential_over_seeds([])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pair", "somewhere", "--seeds", "0,1"], "not --pair"),
        (["--arch", "digits_cnn", "--seeds", "0,a"], "comma-separated integers"),
        (["--arch", "digits_cnn", "--seeds", "1,1"], "distinct"),
        (["--arch", "digits_cnn", "--seeds", "0,1", "--ratios", "0.5,1.5"], "between 0 and 1"),
        (["--arch", "digits_cnn", "--seeds", "0,1", "--delta", "-1"], "--delta must be"),
    ],
)
def test_bad_seed_options_exit_2(argv: list[str], message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", *argv, "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_evaluate_over_two_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--arch", "digits_cnn", "--methods", "ft", "--ratios", "0.3,0.6", "--seeds", "0,1",
                 "--sis-samples", "0", "--out", str(tmp_path), "-q", *TINY])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "report.json").read_text())
    per_seed = [json.loads((tmp_path / f"seed-{s}" / "report.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in per_seed] == [0, 1]
    shas = {r["dense"]["sha256"] for r in per_seed}
    assert len(shas) == 2  # each seed trains its own dense model
    clean = summary["prune_potential"]["ft"]["clean"]
    assert clean["values"] == [r["prune_potential"]["ft"]["clean"] for r in per_seed]
    assert clean["n"] == 2 and clean["min"] <= clean["mean"] <= clean["max"]
    assert (tmp_path / "report.md").read_text().startswith("# Prune potential over seeds")
