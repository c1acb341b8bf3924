"""WT, SiPP, FT and PFP side by side: accuracy and prune potential, clean and under shifts.

For each task one dense model is trained; every (method, ratio) prunes a copy of it in the
same prune → retrain cycles (:func:`sisguard.prune.pipeline.prune_and_retrain`), is exported
to ONNX and evaluated with :func:`sisguard.prune.evaluate.evaluate_family` on clean test
data and the default shifts (noise, Gaussian, brightness, contrast, blur, salt-and-pepper).
It also times one pruning step per method on the dense model (no retraining): the cost of
computing sensitivities.

    python bench/bench_prune_methods.py                       # both tasks, defaults below
    python bench/bench_prune_methods.py --tasks digits --ratios 0.5,0.9 --json out.json

Defaults are sized for a 2-core CPU shared with other work (about 30 minutes at nice 10):
digits_cnn on digits (30 dense epochs, 2 cycles × 3 retraining epochs per model, all six
variants) and resnet_cifar width 4 on synthetic32 with 1200 samples (10 dense epochs, 2 cycles
× 2 retraining epochs, WT/SiPP/FT/PFP); 128 sensitivity inputs; δ = 0.5 pp; one torch thread.
Not a test: it asserts nothing; it prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from sisguard.prune.data import load_digits, synthetic32
from sisguard.prune.evaluate import ModelEntry, evaluate_family
from sisguard.prune.export import export_onnx
from sisguard.prune.ft import ft_prune
from sisguard.prune.measure import count_params
from sisguard.prune.models import digits_cnn, resnet_cifar
from sisguard.prune.pfp import pfp_prune
from sisguard.prune.pipeline import PruneConfig, prune_and_retrain, seed_everything, train_dense, validate_setup
from sisguard.prune.sensitivity import sensitivity_inputs
from sisguard.prune.sipp import sipp_prune
from sisguard.prune.train import TrainConfig
from sisguard.prune.wt import count_nonzero, wt_prune

#: variant name → (method, selection)
VARIANTS = {"wt": ("wt", "sample"), "sipp": ("sipp", "sample"), "sipp-topk": ("sipp", "topk"),
            "ft": ("ft", "sample"), "pfp": ("pfp", "sample"), "pfp-topk": ("pfp", "topk")}


def _task(name: str, seed: int, synthetic_n: int, width: int) -> tuple[Any, Any, dict[str, Any]]:
    seed_everything(seed)
    if name == "digits":
        return digits_cnn(), load_digits(), {"arch": "digits_cnn", "width": 8, "dense_epochs": 30,
                                             "retrain_epochs": 3}
    data = synthetic32(synthetic_n, seed)
    return (resnet_cifar(num_classes=data.num_classes, width=width), data,
            {"arch": "resnet_cifar", "width": width, "dense_epochs": 10, "retrain_epochs": 2})


def _time_prune_step(dense: torch.nn.Module, data: Any, method: str, selection: str, ratio: float,
                     samples: int, seed: int) -> float:
    """Seconds for one pruning step of ``dense`` (sensitivities included, no retraining)."""
    import copy

    model = copy.deepcopy(dense)
    n = count_params(dense)
    example = torch.from_numpy(data.x_train[:2])
    start = time.perf_counter()
    if method in ("sipp", "pfp"):
        batch = sensitivity_inputs(data.x_train, samples, seed)
        if method == "sipp":
            sipp_prune(model, batch, ratio, n, selection, seed)
        else:
            pfp_prune(model, batch, ratio, n, 1, selection, seed)
    elif method == "ft":
        ft_prune(model, example, ratio, n)
    else:
        wt_prune(model, ratio, n)
    return time.perf_counter() - start


def run_task(task: str, variants: list[str], ratios: list[float], args: argparse.Namespace,
             workdir: Path) -> dict[str, Any]:
    """Train the dense model, build and evaluate the family; return the evaluation plus timings."""
    model, data, info = _task(task, args.seed, args.synthetic_n, args.synthetic_width)
    if args.dense_epochs is not None:
        info["dense_epochs"] = args.dense_epochs
    if args.retrain_epochs is not None:
        info["retrain_epochs"] = args.retrain_epochs
    dense_cfg = TrainConfig(epochs=info["dense_epochs"], lr=3e-3)
    retrain_cfg = TrainConfig(epochs=info["retrain_epochs"], lr=1e-3)
    configs = {(v, r): PruneConfig(method=VARIANTS[v][0], ratio=r, cycles=args.cycles, train=dense_cfg,
                                   retrain=retrain_cfg, seed=args.seed, selection=VARIANTS[v][1],
                                   sensitivity_samples=args.sensitivity_samples)
               for v in variants for r in ratios}
    for config in configs.values():
        validate_setup(model, data, config)
    started = time.monotonic()
    train_dense(model, data, next(iter(configs.values())), log=None)
    dense_path = workdir / f"{task}-dense.onnx"
    export_onnx(model, data.input_shape, dense_path)
    step_seconds = {v: _time_prune_step(model, data, VARIANTS[v][0], VARIANTS[v][1], 0.7,
                                        args.sensitivity_samples, args.seed) for v in variants}
    entries = []
    for (variant, ratio), config in configs.items():
        t0 = time.monotonic()
        pruned, _ = prune_and_retrain(model, data, config, log=None)
        path = workdir / f"{task}-{variant}-{ratio:.2f}.onnx"
        export_onnx(pruned, data.input_shape, path)
        reached = 1.0 - count_nonzero(pruned) / count_params(model)
        entries.append(ModelEntry(f"{variant}-{ratio:.2f}", variant, reached, path))
        print(f"[{task}] {variant} {ratio:.2f}: reached {reached:.4f} in {time.monotonic() - t0:.0f}s", flush=True)
    result = evaluate_family(dense_path, entries, data, delta=args.delta, sis_samples=0, seed=args.seed)
    result["bench"] = {"task": task, **info, "cycles": args.cycles, "sensitivity_samples": args.sensitivity_samples,
                       "seed": args.seed, "n_train": len(data.x_train), "n_test": len(data.x_test),
                       "prune_step_seconds_at_0.7": step_seconds, "wall_seconds": time.monotonic() - started}
    return result


def _acc(errors: dict[str, float], shifts: list[str]) -> tuple[float, float, float]:
    shifted = [1.0 - errors[s] for s in shifts if s != "clean"]
    return 1.0 - errors["clean"], sum(shifted) / len(shifted), min(shifted)


def table(result: dict[str, Any], variants: list[str], ratios: list[float]) -> str:
    """One Markdown table: accuracy (clean / mean over shifts) per ratio, then prune potential."""
    shifts = result["shifts"]
    b = result["bench"]
    head = ["method", *[f"acc @{r:g} clean / shifted" for r in ratios], "P(δ) clean", "P(δ) mean shift",
            "P(δ) worst shift", "prune step @0.7 (s)"]
    lines = [f"**{b['task']}** ({b['arch']} width {b['width']}, {b['n_train']} train / {b['n_test']} test, "
             f"{b['dense_epochs']} dense epochs, {b['cycles']} cycles × {b['retrain_epochs']} retrain epochs)", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    clean, mean, _ = _acc(result["dense"]["errors"], shifts)
    dense_cell = f"{100 * clean:.1f} / {100 * mean:.1f}"
    lines.append("| dense | " + " | ".join([dense_cell] * len(ratios)) + " | – | – | – | – |")
    by_name = {m["name"]: m for m in result["models"]}
    for variant in variants:
        cells = [variant.upper()]
        for r in ratios:
            model = by_name[f"{variant}-{r:.2f}"]
            c, m, _ = _acc(model["errors"], shifts)
            cells.append(f"{100 * c:.1f} / {100 * m:.1f}")
        potential = result["prune_potential"][variant]
        shifted = [potential[s] for s in shifts if s != "clean"]
        cells += [f"{potential['clean']:.2f}", f"{sum(shifted) / len(shifted):.2f}", f"{min(shifted):.2f}",
                  f"{b['prune_step_seconds_at_0.7'][variant]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="digits,synthetic32", help="digits and/or synthetic32")
    parser.add_argument("--variants", default="wt,sipp,sipp-topk,ft,pfp,pfp-topk",
                        help=f"any of {','.join(VARIANTS)} (default all)")
    parser.add_argument("--synthetic-variants", default="wt,sipp,ft,pfp",
                        help="variants on synthetic32 (default wt,sipp,ft,pfp: its models cost more)")
    parser.add_argument("--ratios", default="0.3,0.5,0.7,0.9,0.95")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--sensitivity-samples", type=int, default=128)
    parser.add_argument("--synthetic-n", type=int, default=1200)
    parser.add_argument("--synthetic-width", type=int, default=4, help="resnet_cifar width (default 4)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: spinning OpenMP threads crawl on a busy machine)")
    parser.add_argument("--delta", type=float, default=0.5, help="prune-potential tolerance in pp (default 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dense-epochs", type=int, help="override the dense epochs of every task")
    parser.add_argument("--retrain-epochs", type=int, help="override the retraining epochs per cycle")
    parser.add_argument("--json", help="also write all results to this JSON file")
    args = parser.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), seed {args.seed}\n", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            variants = (args.variants if task == "digits" else args.synthetic_variants).split(",")
            results[task] = run_task(task, variants, ratios, args, Path(tmp))
            print("\n" + table(results[task], variants, ratios) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
