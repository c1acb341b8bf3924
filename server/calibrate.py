"""``sisguard calibrate``: the control floor of every divergence measure, measured offline.

Explains and probes a held-out set with the dense, the pruned and the control model of one pair,
in process (the server's own core, batchers and measures; no gRPC), and writes a JSON file with,
per measure: the control's mean and standard deviation (the *floor*: how far retraining alone
moves the measure), the pruned model's mean, the paired excess, and the number of samples the
verdict needs to tell a given excess above the margin at the pair's confidence with 80 % power.

A pair served **without** a control can name that file as ``calibration_file``: its verdict then
compares the pruned model with the recorded floor. That loses what a live control gives: the floor
was measured on the held-out set, so it cannot follow a shift of live traffic (docs/signal.md).

    sisguard calibrate --config pairs.yaml --pair digits --data held_out.npz --out digits.calibration.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

POWER = 0.8


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "calibrate",
        help="measure a pair's control floor offline (for pairs served without a control)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="server YAML naming the pair with its control")
    p.add_argument("--pair", required=True, help="pair to calibrate (must have a control)")
    p.add_argument("--data", type=Path, required=True, help=".npz with held-out inputs under 'x' or 'x_test'")
    p.add_argument("--limit", type=int, default=200, help="inputs to explain and probe (default 200)")
    p.add_argument("--excess", default="0.01,0.02,0.05", help="excess sizes above the margin to size samples for")
    p.add_argument("--seed", type=int, default=0, help="seed of the shift probes' noise")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.set_defaults(func=calibrate_command)


def _fail(message: str) -> int:
    print(f"sisguard: error: {message}", file=sys.stderr)
    return 2


def load_inputs(path: Path, limit: int) -> np.ndarray:
    try:
        with np.load(path) as data:
            key = next((k for k in ("x", "x_test", "inputs") if k in data.files), None)
            if key is None:
                raise ValueError(f"{path} holds {', '.join(data.files) or 'nothing'}; expected 'x' or 'x_test'")
            x = np.asarray(data[key])
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    return x[:limit]


def samples_needed(sd: float, excess: float, confidence: float, deciding: int) -> int | None:
    """Paired samples to show ``excess`` above the margin: ((z_(1-α/m) + z_power) · sd / excess)²."""
    if excess <= 0 or not math.isfinite(sd):
        return None
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / max(deciding, 1)) + NormalDist().inv_cdf(POWER)
    return max(2, math.ceil((z * sd / excess) ** 2))


async def calibrate(settings: Any, pair_name: str, x: np.ndarray, seed: int) -> dict[str, dict[str, list[float]]]:
    """Measure → {"pruned": [...], "control": [...]} over the inputs (explanation and probe measures)."""
    from sisguard.server.background.probes import shift_probe
    from sisguard.server.batching.batcher import FOREGROUND
    from sisguard.server.core.dataplane import DataPlane
    from sisguard.server.core.resolve import ExplainOptions
    from sisguard.server.errors import ServiceError
    from sisguard.sis.errors import SISError

    dataplane = DataPlane(settings)
    await asyncio.to_thread(dataplane.load)
    dataplane.start()
    try:
        pair = dataplane.registry.get(pair_name)
        if not pair.has_control:
            raise ValueError(f"pair {pair_name} has no control: calibration measures the control's floor")
        rng = np.random.default_rng(seed)
        values: dict[str, dict[str, list[float]]] = {}

        def add(measures: dict[str, dict[str, float]]) -> None:
            for m, per in measures.items():
                if "pruned" in per and "control" in per:
                    slot = values.setdefault(m, {"pruned": [], "control": []})
                    slot["pruned"].append(per["pruned"])
                    slot["control"].append(per["control"])

        for i, row in enumerate(np.asarray(x, dtype=pair.input_dtype)):
            try:
                # the use case itself: no metrics and no verdict window, only the measures
                outcome = await dataplane.explanations.explain(
                    pair.name, row[None], ExplainOptions(), None, priority=FOREGROUND, signal=True
                )
            except (ServiceError, SISError) as exc:
                raise ValueError(f"input {i}: {exc}") from exc
            add(outcome.signal_values or {})
            if np.issubdtype(pair.input_dtype, np.floating):
                add(await shift_probe(pair, row, rng, deadline=None, priority=FOREGROUND))
        return values
    finally:
        await dataplane.close()


def summary(values: dict[str, dict[str, list[float]]], margins: dict[str, float], confidence: float,
            excesses: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m, v in sorted(values.items()):
        p, c = np.asarray(v["pruned"]), np.asarray(v["control"])
        d = p - c
        sd_d = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
        entry = {
            "n": len(c),
            "control_mean": float(np.mean(c)),
            "control_sd": float(np.std(c, ddof=1)) if len(c) > 1 else 0.0,
            "pruned_mean": float(np.mean(p)),
            "excess": float(np.mean(d)),
            "excess_sd": sd_d,
            "margin": margins.get(m),
            "samples_needed": {f"{e:g}": samples_needed(sd_d, e, confidence, len(margins)) for e in excesses},
        }
        out[m] = entry
    return out


def calibrate_command(args: argparse.Namespace) -> int:
    from sisguard.server.config import ConfigError, load_settings
    from sisguard.server.runtime.model import ModelLoadError
    from sisguard.server.signal.measures import measure_names, resolve_margins

    try:
        excesses = [float(e) for e in args.excess.split(",") if e.strip()]
        if not excesses or any(not (e > 0 and math.isfinite(e)) for e in excesses):
            raise ValueError(f"--excess takes positive numbers, got {args.excess!r}")
        settings = load_settings(args.config)
        pcs = {p.name: p for p in settings.pairs}
        if args.pair not in pcs:
            raise ValueError(f"no pair {args.pair!r} in {args.config}; pairs: {', '.join(pcs) or '(none)'}")
        pc = pcs[args.pair]
        if pc.control is None:
            raise ValueError(f"pair {args.pair} has no control: add `control:` to measure its floor")
        settings = settings.model_copy(update={"pairs": [pc]})
        x = load_inputs(args.data, args.limit)
    except (ValueError, ConfigError) as exc:
        return _fail(str(exc))
    started = time.monotonic()
    try:
        values = asyncio.run(calibrate(settings, args.pair, x, args.seed))
    except (ValueError, ModelLoadError, ConfigError) as exc:
        return _fail(str(exc))
    margins = resolve_margins(pc.verdict.margins, measure_names([s.name for s in pc.shadow.shift_probe.shifts]))
    doc = {
        "format": 1,
        "pair": args.pair,
        "inputs": len(x),
        "confidence": pc.verdict.confidence,
        "power": POWER,
        "seconds": round(time.monotonic() - started, 1),
        "measures": summary(values, margins, pc.verdict.confidence, excesses),
    }
    args.out.write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    print(f"calibrated {args.pair} on {len(x)} inputs in {doc['seconds']} s: {args.out}", file=sys.stderr)
    for m, e in doc["measures"].items():
        if m in margins:
            needed = e["samples_needed"][f"{excesses[0]:g}"]
            print(f"  {m:<30} control {e['control_mean']:.4f}  pruned {e['pruned_mean']:.4f}  "
                  f"excess {e['excess']:+.4f}  samples for +{excesses[0]:g} above the margin: {needed}",
                  file=sys.stderr)
    return 0


def _finite(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
