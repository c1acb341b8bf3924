"""Evaluation of a dense model and a family of pruned models beyond test accuracy.

:func:`evaluate_family` runs every model (ONNX Runtime, CPU) on clean and shifted test
data and collects, per shift: the error of each model, the prune potential of each
method, the excess error and the functional agreement of each pruned model; on a small
sample of clean test inputs, the rationale agreement (SIS). The result is a plain dict
ready for JSON (see :mod:`sisguard.prune.report`).

Example:
    >>> from sisguard.prune.data import load_digits
    >>> pair = "server/models/digits"
    >>> res = evaluate_family(f"{pair}/dense.onnx", [ModelEntry("ft", "ft", 0.5, f"{pair}/pruned.onnx")],
    ...                       load_digits(), sis_samples=0)   # doctest: +SKIP
    >>> res["prune_potential"]["ft"]["clean"]                 # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sisguard.prune.data import Dataset
from sisguard.prune.errors import PruneError
from sisguard.prune.evaluation_measures import (
    error_rate,
    excess_error,
    functional_agreement,
    mean_interval,
    prune_potential,
)
from sisguard.prune.export import make_session, run_onnx, sha256_file
from sisguard.prune.rationale import rationale_agreement
from sisguard.prune.shifts import Shift, apply_shift, default_shifts
from sisguard.prune.train import Log


@dataclass(frozen=True)
class ModelEntry:
    """A pruned model of the family: its name, method, reached prune ratio and ONNX file."""

    name: str
    method: str
    ratio: float
    path: str | Path


def _check_inputs(dense_path: str | Path, entries: list[ModelEntry], delta: float) -> None:
    if not entries:
        raise PruneError("evaluate needs at least one pruned model")
    for path in [dense_path, *(e.path for e in entries)]:
        if not Path(path).is_file():
            raise PruneError(f"model file {str(path)!r} does not exist")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise PruneError(f"pruned model names must be unique, got {names}")
    if not 0.0 <= delta < 100.0:
        raise PruneError(f"delta must be in [0, 100) percentage points, got {delta}")


def model_errors(logits: dict[str, dict[str, np.ndarray]], labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Model name → shift name → error rate."""
    return {name: {shift: error_rate(lg, labels) for shift, lg in per_shift.items()}
            for name, per_shift in logits.items()}


def summarise(errors: dict[str, dict[str, float]], entries: list[ModelEntry], dense: str,
              delta: float) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Prune potential (method → shift → P(δ)) and excess error (model → shift → value).

    ``delta`` is in percentage points. Pure function of the errors, so it can be checked on
    constructed cases.
    """
    shifts = list(errors[dense])
    potential: dict[str, dict[str, float]] = {}
    for method in sorted({e.method for e in entries}):
        family = [e for e in entries if e.method == method]
        potential[method] = {
            shift: prune_potential([e.ratio for e in family], [errors[e.name][shift] for e in family],
                                   errors[dense][shift], delta / 100.0)
            for shift in shifts
        }
    excess = {
        e.name: {shift: excess_error(errors[e.name]["clean"], errors[e.name][shift],
                                     errors[dense]["clean"], errors[dense][shift]) for shift in shifts}
        for e in entries
    }
    return potential, excess


def evaluate_family(dense_path: str | Path, entries: list[ModelEntry], data: Dataset,
                    shifts: list[Shift] | None = None, delta: float = 0.5, sis_samples: int = 20,
                    sis_fraction: float = 0.9, seed: int = 0, log: Log | None = None) -> dict[str, Any]:
    """Evaluate ``entries`` against the dense model; see the module docstring for what is measured."""
    _check_inputs(dense_path, entries, delta)
    shifts = shifts or default_shifts()
    if shifts[0].kind != "clean":
        shifts = [Shift("clean"), *[s for s in shifts if s.kind != "clean"]]
    dense_name = "dense"
    sessions = {dense_name: make_session(dense_path, threads=2)}
    sessions.update({e.name: make_session(e.path, threads=2) for e in entries})
    logits: dict[str, dict[str, np.ndarray]] = {name: {} for name in sessions}
    for shift in shifts:
        x = apply_shift(shift, data.x_test, data.value_range, seed)
        for name, session in sessions.items():
            logits[name][shift.name] = run_onnx(session, x)
        if log is not None:
            dense_error = error_rate(logits[dense_name][shift.name], data.y_test)
            log(f"[evaluate] {shift.name}: dense error {100 * dense_error:.2f}%")
    errors = model_errors(logits, data.y_test)
    potential, excess = summarise(errors, entries, dense_name, delta)
    functional = {
        e.name: {shift.name: functional_agreement(logits[dense_name][shift.name], logits[e.name][shift.name])
                 for shift in shifts}
        for e in entries
    }
    rationale: dict[str, dict[str, Any]] = {}
    if sis_samples > 0:
        if log is not None:
            log(f"[evaluate] SIS rationale agreement on {sis_samples} test inputs …")
        sample = data.x_test[: min(sis_samples, len(data.x_test))]
        rationale = asyncio.run(rationale_agreement(
            sessions[dense_name], {e.name: sessions[e.name] for e in entries}, sample, sis_fraction))
    return {
        "data": {"name": data.name, "input_shape": list(data.input_shape), "n_test": len(data.x_test)},
        "delta_pp": delta,
        "seed": seed,
        "shifts": [s.name for s in shifts],
        "dense": {"path": str(dense_path), "sha256": sha256_file(dense_path), "errors": errors[dense_name]},
        "models": [
            {"name": e.name, "method": e.method, "ratio": e.ratio, "path": str(e.path),
             "sha256": sha256_file(e.path), "errors": errors[e.name], "excess_error": excess[e.name],
             "functional": functional[e.name], "rationale": rationale.get(e.name)}
            for e in entries
        ],
        "prune_potential": potential,
        "sis": {"samples": min(sis_samples, len(data.x_test)), "threshold_fraction": sis_fraction,
                "baseline": "zero"},
    }


def potential_over_seeds(results: list[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """Prune potential over families built with different training seeds.

    ``results`` are :func:`evaluate_family` results, one per seed, of the same methods and
    shifts. Returns, per method and shift, the potential of every seed and their mean, min/max
    and Student-t interval (:func:`sisguard.prune.evaluation_measures.mean_interval`).
    """
    if not results:
        raise PruneError("potential over seeds needs at least one evaluated family")
    shifts = results[0]["shifts"]
    methods = sorted(results[0]["prune_potential"])
    for result in results[1:]:
        if result["shifts"] != shifts or sorted(result["prune_potential"]) != methods:
            raise PruneError("every seed's family must have the same methods and shifts")
    seeds = [int(r["seed"]) for r in results]
    summary = {
        method: {shift: {**mean_interval([r["prune_potential"][method][shift] for r in results], confidence),
                         "values": [r["prune_potential"][method][shift] for r in results]}
                 for shift in shifts}
        for method in methods
    }
    return {"seeds": seeds, "shifts": shifts, "delta_pp": results[0]["delta_pp"], "data": results[0]["data"],
            "confidence": confidence, "prune_potential": summary}
