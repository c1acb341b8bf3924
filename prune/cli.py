"""The ``prune`` and ``evaluate`` subcommands of the ``sisguard`` command.

``sisguard`` (in ``sisguard.client.cli``) calls :func:`add_subcommands` with its argparse
subparsers; ``python -m sisguard.prune`` builds its own parser the same way. Every
subcommand sets ``func`` to a function ``(args) -> exit code``. User errors print one line
on stderr and return 2 before any training starts; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sisguard.prune.command_options import (
    add_model_data_args,
    add_training_args,
    build_model_and_data,
    log_of,
    train_configs,
)
from sisguard.prune.errors import PruneError

EXIT_USAGE = 2


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``prune``, ``evaluate`` and ``family`` on an argparse subparsers object."""
    prune = subparsers.add_parser(
        "prune", help="prune a torch model (WT, SiPP, FT or PFP), retrain, export the dense/pruned ONNX pair",
        description="Train (or load) a dense model, prune it iteratively to the target ratio with "
                    "retraining, retrain a control the same way without pruning, export dense.onnx, "
                    "pruned.onnx and control.onnx, check them against torch, and write manifest.json and "
                    "pair.yaml (the block for the server config).",
    )
    add_model_data_args(prune)
    prune.add_argument("--method", required=True,
                       help="wt (weight thresholding), sipp (sensitivity-informed weight pruning), ft (filter "
                            "thresholding) or pfp (provable filter pruning); ft and pfp shrink the layers")
    prune.add_argument("--ratio", type=float, required=True, help="target prune ratio in (0, 1)")
    prune.add_argument("--out", required=True, help="output directory for the pair")
    prune.add_argument("--name", help="pair name in pair.yaml (default: the output directory's name)")
    prune.add_argument("--class-labels", help="comma-separated class labels (default: 0, 1, …)")
    prune.add_argument("--no-control", action="store_true",
                       help="do not make control.onnx (the dense model retrained like the pruned one, unpruned)")
    prune.add_argument("--control-seed", type=int,
                       help="seed of the control's retraining (default: --seed, the pruned model's)")
    add_training_args(prune)
    prune.set_defaults(func=prune_command)

    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate pruned models beyond test accuracy (shifts, prune potential, agreement)",
        description="Evaluate a dense model and a family of pruned models on clean and shifted test data: "
                    "error, prune potential, excess error, functional and rationale (SIS) agreement. "
                    "Either give existing pair directories (--pair, repeatable) or build the family with "
                    "--arch/--model, --methods and --ratios.",
    )
    add_model_data_args(evaluate)
    evaluate.add_argument("--pair", action="append", default=[], help="pair directory made by "
                          "'sisguard prune' (repeatable; all must share the dense model)")
    evaluate.add_argument("--methods", default="wt,ft", help="methods of the family to build, any of "
                          "wt,sipp,ft,pfp (default wt,ft)")
    evaluate.add_argument("--ratios", default="0.3,0.5,0.7,0.9", help="prune ratios of the family "
                          "(default 0.3,0.5,0.7,0.9)")
    evaluate.add_argument("--out", required=True, help="report directory")
    evaluate.add_argument("--delta", type=float, default=0.5,
                          help="tolerance δ of the prune potential in percentage points (default 0.5)")
    evaluate.add_argument("--seeds", help="comma-separated training seeds, e.g. 0,1,2: build the family once per "
                          "seed (into OUT/seed-<s>) and report the prune potential's mean, min/max and t-interval "
                          "over them (needs --arch/--model)")
    evaluate.add_argument("--sis-samples", type=int, default=20,
                          help="test inputs explained for rationale agreement; 0 to skip (default 20)")
    evaluate.add_argument("--sis-threshold", type=float, default=0.9,
                          help="SIS threshold as a fraction of each model's own score (default 0.9)")
    add_training_args(evaluate)
    evaluate.set_defaults(func=evaluate_command)

    from sisguard.prune.family_cli import add_family_subcommand

    add_family_subcommand(subparsers)


def prune_command(args: argparse.Namespace) -> int:
    """``sisguard prune``: make a dense/pruned pair; returns the exit code."""
    try:
        from sisguard.prune.pipeline import PruneConfig, run_prune

        ratio = float(args.ratio)
        dense_cfg, retrain_cfg = train_configs(args)
        config = PruneConfig(method=args.method.lower(), ratio=ratio, cycles=args.cycles, train=dense_cfg,
                             retrain=retrain_cfg, seed=args.seed, opset=args.opset,
                             channel_multiple=args.channel_multiple,
                             sensitivity_samples=args.sensitivity_samples, selection=args.selection.lower())
        config.validate()
        model, data, info = build_model_and_data(args)
        labels = [s.strip() for s in args.class_labels.split(",")] if args.class_labels else None
        if args.control_seed is not None and args.no_control:
            raise PruneError("--control-seed needs a control; drop --no-control")
        if args.control_seed is not None and args.control_seed < 0:
            raise PruneError(f"--control-seed must be >= 0, got {args.control_seed}")
        manifest = run_prune(model, data, config, args.out, name=args.name, model_info=info,
                             class_labels=labels, log=log_of(args), control=not args.no_control,
                             control_seed=args.control_seed)
    except PruneError as exc:
        print(f"sisguard prune: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    acc = manifest["accuracy"]
    print(f"{manifest['method'].upper()} ratio {manifest['ratio']:.4f}: dense acc {100 * acc['dense']['onnx']:.2f}%, "
          f"pruned acc {100 * acc['pruned']['onnx']:.2f}%, params {manifest['params']['dense']} → "
          f"{manifest['params']['pruned_nonzero']} (nonzero)"
          + (f", control acc {100 * acc['control']['onnx']:.2f}%" if "control" in acc else "")
          + f"; wrote {Path(args.out) / 'pair.yaml'}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``sisguard evaluate``: evaluate a family of pruned models; returns the exit code."""
    try:
        from sisguard.prune.evaluate_cli import run_evaluate_command

        report_path = run_evaluate_command(args, log_of(args))
    except PruneError as exc:
        print(f"sisguard evaluate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {report_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser with the ``prune`` and ``evaluate`` subcommands."""
    parser = argparse.ArgumentParser(prog="python -m sisguard.prune",
                                     description="Prune torch models and evaluate dense/pruned pairs.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_subcommands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m sisguard.prune``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
