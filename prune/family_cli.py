"""``sisguard family``: build a model family with ground truth (see :mod:`sisguard.prune.family`).

Only argparse lives at module level; torch and the family code load when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sisguard.prune.errors import PruneError

EXIT_USAGE = 2


def add_family_subcommand(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``family`` on an argparse subparsers object."""
    family = subparsers.add_parser(
        "family", help="build a model family (dense, two controls, WT/FT at several ratios) with ground truth",
        description="Train one dense model, two controls (retrained like the pruned models, nothing pruned, "
                    "retraining seeds 0 and 1) and WT/FT models at several ratios; export all as ONNX into "
                    "--out with family.yaml (server pairs: dense + model + control), ground_truth.json and "
                    "ground_truth.md (error under shifts on a held-out split, excess over dense and control, "
                    "label damaged/healthy/grey). Re-running with the same options reuses the files.",
    )
    family.add_argument("--out", required=True, help="output directory (reused when the options match)")
    family.add_argument("--quick", action="store_true",
                        help="CI-sized family: ratios 0.5,0.7,0.9, 2 cycles × 4 retraining epochs, 20 dense epochs")
    family.add_argument("--arch", help="built-in architecture (default digits_cnn)")
    family.add_argument("--data", help="digits (default) or synthetic32")
    family.add_argument("--width", type=int, help="channel width of the architecture")
    family.add_argument("--methods", help="comma-separated methods (default wt,ft)")
    family.add_argument("--ratios", help="comma-separated prune ratios (default 0.3,0.5,0.7,0.8,0.9,0.95)")
    family.add_argument("--shifts", help="comma-separated shifts kind-level "
                        "(default uniform-0.3,gaussian-0.1,brightness-0.3,contrast-0.5,blur-0.8)")
    family.add_argument("--cycles", type=int, help="prune → retrain cycles (default 3)")
    family.add_argument("--epochs", type=int, help="dense training epochs (default 30)")
    family.add_argument("--retrain-epochs", type=int, help="retraining epochs per cycle (default 10)")
    family.add_argument("--seed", type=int, help="seed of the dense model and the pruned models (default 0)")
    family.add_argument("--control-seeds", help="retraining seeds of the two controls (default 0,1)")
    family.add_argument("--n-train", type=int, help="digits: training images, the rest held out (default 1000)")
    family.add_argument("--synthetic-n", type=int, help="synthetic32: images in all (default 3000)")
    family.add_argument("--force", action="store_true", help="rebuild even when the cached family matches")
    family.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    family.set_defaults(func=family_command)


def _split(text: str, what: str, kind: type) -> tuple[Any, ...]:
    try:
        return tuple(kind(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise PruneError(f"--{what} must be a comma-separated list, got {text!r}") from exc


def family_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~sisguard.prune.family.FamilyConfig` fields given on the command line."""
    from sisguard.prune.family import FamilyConfig
    from sisguard.prune.train import TrainConfig

    preset = FamilyConfig.preset("quick" if args.quick else "full")
    fields: dict[str, Any] = {}
    for name in ("arch", "data", "width", "cycles", "seed", "n_train", "synthetic_n"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if args.methods is not None:
        fields["methods"] = tuple(m.lower() for m in _split(args.methods, "methods", str))
    if args.ratios is not None:
        fields["ratios"] = _split(args.ratios, "ratios", float)
    if args.shifts is not None:
        fields["shifts"] = _split(args.shifts, "shifts", str)
    if args.control_seeds is not None:
        seeds = _split(args.control_seeds, "control-seeds", int)
        if len(seeds) != 2:
            raise PruneError(f"--control-seeds takes two seeds, got {args.control_seeds!r}")
        fields["control_seeds"] = seeds
    if args.epochs is not None:
        fields["train"] = TrainConfig(**{**preset.train.__dict__, "epochs": args.epochs})
    if args.retrain_epochs is not None:
        fields["retrain"] = TrainConfig(**{**preset.retrain.__dict__, "epochs": args.retrain_epochs})
    return fields


def family_command(args: argparse.Namespace) -> int:
    """``sisguard family``: build or reuse the family, print the ground-truth table; returns the exit code."""
    try:
        from sisguard.prune.family import FamilyConfig, make_family, markdown_table

        config = FamilyConfig.preset("quick" if args.quick else "full", **family_overrides(args))
        log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        gt = make_family(config, args.out, log=log, force=args.force)
    except PruneError as exc:
        print(f"sisguard family: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(markdown_table(gt), end="")
    print(f"wrote {Path(args.out) / 'family.yaml'} and {Path(args.out) / 'ground_truth.json'}")
    return 0
