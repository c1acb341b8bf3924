"""``sisguard evaluate``: gather (or build) a family of pruned models and write the report.

Two ways to name the family:

* ``--pair DIR`` (repeatable): pair directories made by ``sisguard prune``; their manifests
  give method and ratio, and all must share one dense model;
* ``--arch``/``--model`` with ``--methods`` and ``--ratios``: train one dense model, prune a
  copy per (method, ratio) with retraining, and write each pair to ``OUT/models/<method>-<ratio>``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sisguard.prune.command_options import build_model_and_data, train_configs
from sisguard.prune.data import load_dataset
from sisguard.prune.errors import DataMismatchError, PruneError
from sisguard.prune.evaluate import ModelEntry, evaluate_family
from sisguard.prune.manifest import read_manifest
from sisguard.prune.pipeline import METHODS, PruneConfig, prune_and_retrain, train_dense, validate_setup, write_pair
from sisguard.prune.report import write_report
from sisguard.prune.train import Log


def parse_ratios(text: str) -> list[float]:
    """``"0.3,0.5"`` → ``[0.3, 0.5]``; each must lie in (0, 1)."""
    try:
        ratios = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise PruneError(f"ratios must be comma-separated numbers, got {text!r}") from exc
    if not ratios:
        raise PruneError("give at least one prune ratio")
    for ratio in ratios:
        if not 0.0 < ratio < 1.0:
            raise PruneError(f"prune ratio must lie strictly between 0 and 1, got {ratio}")
    return sorted(set(ratios))


def parse_methods(text: str) -> list[str]:
    """``"wt,ft"`` → ``["wt", "ft"]``; each must be a known method."""
    methods = [part.strip().lower() for part in text.split(",") if part.strip()]
    for method in methods:
        if method not in METHODS:
            raise PruneError(f"unknown prune method {method!r}: use one of {', '.join(METHODS)}")
    if not methods:
        raise PruneError("give at least one prune method")
    return list(dict.fromkeys(methods))


def entries_from_pairs(pairs: list[str], input_shape: tuple[int, ...]) -> tuple[Path, list[ModelEntry]]:
    """Dense file and pruned entries of existing pair directories (which must share the dense model)."""
    dense: tuple[Path, str] | None = None
    entries: list[ModelEntry] = []
    for pair in pairs:
        directory = Path(pair)
        if not (directory / "manifest.json").is_file():
            raise PruneError(f"{pair!r} is not a pair directory (no manifest.json)")
        manifest = read_manifest(directory)
        if tuple(manifest["data"]["input_shape"]) != tuple(input_shape):
            raise DataMismatchError(f"pair {pair!r} takes inputs {manifest['data']['input_shape']}, "
                                    f"the dataset has {list(input_shape)}")
        sha = manifest["files"]["dense.onnx"]["sha256"]
        if dense is None:
            dense = (directory / "dense.onnx", sha)
        elif dense[1] != sha:
            raise PruneError(f"pair {pair!r} has a different dense model than {str(dense[0].parent)!r}")
        entries.append(ModelEntry(str(manifest["name"]), str(manifest["method"]), float(manifest["ratio"]),
                                  directory / "pruned.onnx"))
    if dense is None:
        raise PruneError("no pair given")
    return dense[0], entries


def build_family(args: argparse.Namespace, log: Log | None) -> tuple[Path, list[ModelEntry], object]:
    """Train one dense model and prune it per (method, ratio); return dense file, entries, dataset."""
    methods, ratios = parse_methods(args.methods), parse_ratios(args.ratios)
    dense_cfg, retrain_cfg = train_configs(args)
    configs = [PruneConfig(method=m, ratio=r, cycles=args.cycles, train=dense_cfg, retrain=retrain_cfg,
                           seed=args.seed, opset=args.opset, channel_multiple=args.channel_multiple,
                           sensitivity_samples=args.sensitivity_samples, selection=args.selection.lower())
               for m in methods for r in ratios]
    for config in configs:
        config.validate()
    model, data, info = build_model_and_data(args)
    for config in configs:  # every check before any training
        validate_setup(model, data, config)
    train_dense(model, data, configs[0], log)
    models_dir = Path(args.out) / "models"
    entries: list[ModelEntry] = []
    dense_file: Path | None = None
    for config in configs:
        name = f"{config.method}-{config.ratio:.2f}"
        pruned, _ = prune_and_retrain(model, data, config, log)
        manifest = write_pair(model, pruned, data, config, models_dir / name, name, info, log=log,
                              dense_file=dense_file)
        dense_file = models_dir / name / "dense.onnx"
        entries.append(ModelEntry(name, config.method, float(manifest["ratio"]), models_dir / name / "pruned.onnx"))
    if dense_file is None:
        raise PruneError("no pruned model was built")
    return dense_file, entries, data


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; distinct non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise PruneError(f"--seeds must be comma-separated integers, got {text!r}") from exc
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise PruneError(f"--seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def run_over_seeds(args: argparse.Namespace, seeds: list[int], log: Log | None) -> Path:
    """Build and evaluate the family once per training seed; report the potential over seeds.

    Each seed trains its own dense model and prunes it (also the noise of the shifts and, for
    synthetic32, the data set follow the seed); its full report goes to ``OUT/seed-<s>``, the
    summary (mean, min/max, t-interval of every potential) to ``OUT/report.md`` and ``.json``.
    """
    from sisguard.prune.evaluate import potential_over_seeds
    from sisguard.prune.report import write_seed_report

    if args.pair:
        raise PruneError("--seeds builds one family per seed: give --arch/--model, not --pair")
    parse_methods(args.methods)  # refuse bad options before any training
    parse_ratios(args.ratios)
    results = []
    for seed in seeds:
        if log is not None:
            log(f"[evaluate] family for seed {seed} …")
        run_args = argparse.Namespace(**{**vars(args), "seed": seed, "out": str(Path(args.out) / f"seed-{seed}")})
        dense_file, entries, data = build_family(run_args, log)
        result = evaluate_family(dense_file, entries, data, delta=args.delta,  # type: ignore[arg-type]
                                 sis_samples=args.sis_samples, sis_fraction=args.sis_threshold, seed=seed, log=log)
        write_report(result, run_args.out)
        results.append(result)
    return write_seed_report(potential_over_seeds(results), args.out)


def run_evaluate_command(args: argparse.Namespace, log: Log | None) -> Path:
    """Run ``sisguard evaluate`` with parsed ``args``; return the path of ``report.md``."""
    if args.sis_samples < 0:
        raise PruneError(f"--sis-samples must be >= 0, got {args.sis_samples}")
    if not 0.0 < args.sis_threshold <= 1.0:
        raise PruneError(f"--sis-threshold must lie in (0, 1], got {args.sis_threshold}")
    if not 0.0 <= args.delta < 100.0:
        raise PruneError(f"--delta must be in [0, 100) percentage points, got {args.delta}")
    if getattr(args, "seeds", None):
        return run_over_seeds(args, parse_seeds(args.seeds), log)
    if args.pair:
        if args.arch or args.model:
            raise PruneError("give either --pair directories or --arch/--model to build a family, not both")
        data = load_dataset(args.data, seed=args.seed, synthetic_n=args.synthetic_n)
        dense_file, entries = entries_from_pairs(args.pair, data.input_shape)
    else:
        dense_file, entries, data = build_family(args, log)
    result = evaluate_family(dense_file, entries, data, delta=args.delta,  # type: ignore[arg-type]
                             sis_samples=args.sis_samples, sis_fraction=args.sis_threshold, seed=args.seed, log=log)
    return write_report(result, args.out)
