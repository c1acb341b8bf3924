"""Validation benchmark of the divergence verdict on model families whose damage is known.

Run from the repository root::

    python bench/bench_signal.py                   # quick: digits, WT/FT at 0.5/0.7/0.9 (about 5 min on 2 cores)
    python bench/bench_signal.py --full            # WT/FT at 0.3 … 0.95 with full retraining (about 20 min)
    python bench/bench_signal.py --full --arch mlp  # a second architecture (digits MLP), same margins

Steps, in one run:

1. **The family** (``sisguard.prune.family``, cached under ``bench/.cache/signal/``): one dense
   model, two controls (the dense model retrained exactly like the pruned ones, nothing pruned;
   two retraining seeds), WT and FT models at each ratio. **Ground truth** on the held-out split:
   each model's error under noise, Gaussian, contrast, blur and brightness; its excess error over
   the *dense* model; ``damaged`` (≥ 2 points under some shift), ``healthy`` (≤ 0.5 under every
   shift) or ``grey`` (not scored), as "Lost in Pruning" defines it. The controls' own excess errors
   are the retraining noise of that ground truth.
2. **Live traffic through a real server** (``sisguard serve`` in a child process, on a free loopback
   port): one pair per pruned model (and ``control2``: the second control served as if it were a
   pruned model), each with the dense model and the control. Predict traffic of held-out images is
   sent pair by pair; the server's **default sampling** (``shadow.sample_rate`` 0.01 and
   ``shift_probe.sample_rate`` 0.01) picks the rows to explain and probe. Simulated time runs
   ``--speedup`` times faster than the wall clock: the traffic rate (``--rows-per-second``,
   simulated) and the budgets (``max_per_second`` 1 explanation and 5 probes per simulated second,
   the defaults) are all multiplied by it, so the server does in one real second what it would do
   in ``speedup`` seconds at the default budgets; the shadow queue and drop counters are reported,
   so a server that could not keep up shows.
3. Traffic to a pair stops at ``--max-explained`` shadow explanations (200) or ``--max-minutes``
   of simulated traffic (10); the verdict is read with ``PairHealth`` (the SDK) every simulated
   ``--poll-seconds``, and the table reports the final verdict, whether it matches the ground truth,
   and the explained requests (and probed rows) after which it was reached and stayed.

Per model the per-measure table prints every deciding measure's excess with its interval, and the
measures of the explanation (which do not decide by default) for comparison. Nothing here is
tuned per model: the server's default margins decide.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load import Spawned  # noqa: E402  (bench/ is a folder of scripts)

from sisguard.client import Client  # noqa: E402
from sisguard.prune.family import FamilyConfig, make_family  # noqa: E402

CACHE = HERE / ".cache" / "signal"
ARCHS = {
    "digits_cnn": {"arch": "digits_cnn", "data": "digits"},
    "mlp": {"arch": "digits_mlp", "data": "digits"},
    "resnet": {"arch": "resnet_cifar", "data": "synthetic32", "width": 8},
}
#: Explain defaults per architecture: one feature per pixel on 8x8 digits (d = 64), 4x4 patches on
#: 3x32x32 inputs (d = 64; pixels would be d = 1024, half a million rows per explanation and model)
EXPLAIN = {
    "digits_cnn": {"threshold": 0.9, "features": "pixel", "baseline": "blur", "baseline_blur_sigma": 3.0},
    "mlp": {"threshold": 0.9, "features": "pixel", "baseline": "blur", "baseline_blur_sigma": 3.0},
    "resnet": {"threshold": 0.9, "features": "patch", "patch": [4, 4], "baseline": "zeros"},
}


def build_family(arch: str, mode: str) -> tuple[Path, dict[str, Any]]:
    spec = ARCHS[arch]
    cfg = FamilyConfig.preset(mode, **spec)
    out = CACHE / f"{spec['arch']}-{spec['data']}-{mode}"
    gt = make_family(cfg, out, log=lambda line: print(line, file=sys.stderr, flush=True))
    return out, gt


def server_config(family: Path, tmp: Path, speedup: float, pairs: list[str], explain: dict[str, Any]) -> Path:
    """The family's pairs with the server's defaults, budgets scaled by ``speedup``."""
    doc = yaml.safe_load((family / "family.yaml").read_text())
    chosen = []
    for p in doc["pairs"]:
        if p["name"] not in pairs:
            continue
        for key in ("dense", "pruned", "control"):
            p[key] = str((family / p[key]).resolve())
        p["max_batch_size"] = 64
        p["explain"] = dict(explain)
        p["shadow"] = {
            "max_per_second": 1.0 * speedup,
            "noise_probe": {"sample_rate": 0.0},
            "shift_probe": {"max_per_second": 5.0 * speedup, "value_range": [0.0, 1.0]},
        }
        p["verdict"] = {"update_seconds": 0.5}
        chosen.append(p)
    path = tmp / "signal.yaml"
    path.write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": 0, "metrics_port": None, "reflection": False,
        "runtime": {"providers": ["cpu"], "intra_op_threads": 1},
        "pairs": chosen,
    }))
    return path


def drive(client: Client, pair: str, x: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """Predict traffic to one pair until the budget of explanations or of simulated time is spent."""
    rate = args.rows_per_second * args.speedup  # real rows per second
    batch = args.batch
    sim_limit = args.max_minutes * 60.0
    rng = np.random.default_rng(0)
    rows = 0
    started = time.monotonic()
    next_poll = 0.0
    history: list[tuple[float, int, int, str]] = []
    health = client.pair_health(pair)
    while True:
        sim = (time.monotonic() - started) * args.speedup
        if sim >= next_poll:
            health = client.pair_health(pair)
            explained = _samples(health, "explain")
            probed = _samples(health, "probe")
            history.append((sim, explained, probed, health.verdict))
            next_poll = sim + args.poll_seconds
            if explained >= args.max_explained or sim >= sim_limit:
                break
        idx = rng.integers(0, len(x), size=batch)
        client.predict(pair, x[idx], variant="dense")
        rows += batch
        ahead = rows / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    final = health.verdict
    reached = history[-1]
    for h in reversed(history):  # the earliest poll from which the verdict stayed the final one
        if h[3] != final:
            break
        reached = h
    return {"health": health, "rows": rows, "sim_seconds": history[-1][0], "history": history,
            "reached_at": {"sim_seconds": reached[0], "explained": reached[1], "probed": reached[2]}}


def _samples(health: Any, source: str) -> int:
    """Samples of the source's most frequent measure: explained inputs with a dense SIS, or probed rows."""
    return max((m.samples for m in health.measures if m.source == source), default=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full family (WT/FT at 0.3 … 0.95)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="digits_cnn")
    ap.add_argument("--speedup", type=float, default=10.0, help="simulated seconds per real second (default 10)")
    ap.add_argument("--rows-per-second", type=float, default=500.0, help="simulated Predict rows per second per pair")
    ap.add_argument("--batch", type=int, default=25, help="rows per Predict call")
    ap.add_argument("--max-explained", type=int, default=200, help="stop a pair after this many shadow explanations")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="stop a pair after this much simulated traffic")
    ap.add_argument("--poll-seconds", type=float, default=10.0, help="simulated seconds between PairHealth reads")
    ap.add_argument("--pairs", help="comma-separated subset of the family's pairs")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()

    mode = "full" if args.full else "quick"
    family, gt = build_family(args.arch, mode)
    models = gt["models"]
    data = np.load(family / "data.npz")
    x = data["x_test"].astype(np.float32)
    names = [n for n in models if models[n]["kind"] == "pruned"] + ["control2"]
    if args.pairs:
        names = [n for n in names if n in args.pairs.split(",")]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = server_config(family, Path(tmp), args.speedup, names, EXPLAIN[args.arch])
        server = Spawned(config, Path(tmp) / "server.log")
        try:
            address = server.wait()
            with Client(address, timeout=60) as client:
                for name in names:
                    t0 = time.monotonic()
                    results[name] = drive(client, name, x, args)
                    results[name]["wall_seconds"] = time.monotonic() - t0
                    h = results[name]["health"]
                    print(f"[signal] {name}: {h.verdict} after {results[name]['reached_at']}", file=sys.stderr,
                          flush=True)
        finally:
            server.stop()
    report(args, family, gt, results)
    if args.json:
        args.json.write_text(json.dumps(to_json(gt, results), indent=2) + "\n")
    return 0


def to_json(gt: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, r in results.items():
        out[name] = {"ground_truth": gt["models"][name], "verdict": r["health"].verdict,
                     "reached_at": r["reached_at"], "rows": r["rows"], "sim_seconds": r["sim_seconds"],
                     "measures": [m.to_dict() for m in r["health"].measures]}
    return out


def _pp(v: float) -> str:
    return f"{v:+.1f}"


def report(args: argparse.Namespace, family: Path, gt: dict[str, Any], results: dict[str, Any]) -> None:
    models = gt["models"]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n# Divergence verdict on {args.arch} ({'full' if args.full else 'quick'} family), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}")
    print(f"family: {family.relative_to(HERE.parent) if family.is_relative_to(HERE.parent) else family}; "
          f"held-out inputs: {gt['n_test']}; dense clean accuracy {100 * gt['dense_acc']:.1f} %")
    print(f"traffic: {args.rows_per_second:g} rows/s simulated per pair, default sampling (0.01) and budgets "
          f"(1 explanation/s, 5 probes/s), x{args.speedup:g} time; stop at {args.max_explained} explained or "
          f"{args.max_minutes:g} simulated minutes\n")
    print("| model | clean acc. | within 0.5 pt | worst excess err. vs dense (shift) | vs control | ground truth "
          "| (label vs control) | verdict | match | explained / probed when reached | simulated min |")
    print("|---|---:|:-:|---|---:|---|---|---|:-:|---:|---:|")
    scored = hits = 0
    for name, r in results.items():
        m = models[name]
        label = m["label"]
        verdict = r["health"].verdict
        want = {"damaged": "damaged", "healthy": "healthy"}.get(label)
        match = "–" if want is None else ("yes" if verdict == want else "**no**")
        if want is not None:
            scored += 1
            hits += verdict == want
        worst = m["worst_shift"]
        at = r["reached_at"]
        print(f"| {name} | {100 * m['clean_acc']:.1f} | {'yes' if m['clean_within_tolerance'] else 'no'} "
              f"| {_pp(m['worst_excess_over_dense_pp'])} ({worst}) | {_pp(m['worst_excess_over_control_pp'])} "
              f"| {label} | ({m.get('label_vs_control', '?')}) | {verdict} | {match} "
              f"| {at['explained']} / {at['probed']} | {at['sim_seconds'] / 60:.1f} |")
    print(f"\nscored: {hits} of {scored} verdicts match the ground truth (grey-zone models are shown, not scored)")
    for ctrl in ("control", "control2"):
        c = models.get(ctrl)
        if c:
            ex = ", ".join(f"{s} {_pp(v['excess_over_dense_pp'])}" for s, v in c["shifts"].items())
            print(f"retraining noise — {ctrl} excess error over dense (points): {ex}")
    print("\n## Evidence per model: deciding measures (excess over the reference, joint interval) and the "
          "explanation measures\n")
    for name, r in results.items():
        h = r["health"]
        print(f"### {name}: {h.verdict} (reference {h.reference}, {r['rows']} rows, "
              f"{r['sim_seconds'] / 60:.1f} simulated min)\n")
        print("| measure | n | pruned | reference | excess | interval | margin | decides | samples to decide |")
        print("|---|---:|---:|---:|---:|---|---:|:-:|---:|")
        for e in h.measures:
            if not (e.deciding or e.source == "explain" or e.name in ("top1_disagreement",)):
                continue
            margin = f"{e.margin:.3f}" if e.deciding else "–"
            state = "**damaged**" if e.damaged else ("yes" if e.deciding else "")
            interval = "–" if e.samples == 0 else f"[{e.lower:+.3f}, {e.upper:+.3f}]"
            # samples at which this measure's interval separates its estimate from the margin
            to_decide = f"{e.samples + e.samples_needed}" if e.deciding else "–"
            print(f"| {e.name} | {e.samples} | {e.pruned_mean:.3f} | {e.reference_mean:.3f} ({e.reference}) "
                  f"| {e.estimate:+.3f} | {interval} | {margin} | {state} | {to_decide} |")
        print()


if __name__ == "__main__":
    raise SystemExit(main())
