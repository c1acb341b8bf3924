"""``sisguard audit`` and ``sisguard audit-report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sisguard.audit.errors import AuditError


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "audit",
        help="explain a dataset with every model of a pair, in-process (local pool or Ray), into Parquet",
        description="Explain every input of a dataset (.npz, a folder of images, or Parquet) with the dense, "
        "pruned and control model of a pair, and write per input each model's SIS, BackSelect traces and "
        "every agreement measure to Parquet shards. Run it again with the same arguments to resume.",
    )
    p.add_argument("dataset", type=Path, help=".npz (array x, optional y), a folder of images, or .parquet (column x)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; an existing audit resumes)")
    p.add_argument("--config", type=Path, help="server config with the pair (default: the bundled digits pair)")
    p.add_argument("--pair", help="pair name (default: the config's first pair)")
    p.add_argument("--threshold", type=float, help="tau (default: the pair's explain.threshold)")
    p.add_argument("--max-sis", type=int, help="SIS per model and input (default: the pair's)")
    p.add_argument("--batch-k", type=int, default=1, help="features removed per BackSelect step (1: exact)")
    p.add_argument("--max-evaluations", type=int, help="budget of model rows per model and input")
    p.add_argument("--strict-budget", action="store_true", help="fail instead of keeping partial SIS past the budget")
    p.add_argument("--max-total-evaluations", type=int, help="stop scheduling chunks after this many model rows")
    p.add_argument("--chunk-size", type=int, default=8, help="inputs per chunk and shard (default 8)")
    p.add_argument("--limit", type=int, help="audit only the first N inputs")
    p.add_argument("--workers", type=int, help="workers (default: one per core, or per Ray CPU)")
    p.add_argument("--ray-address", help="run on this Ray cluster (host:port, ray://host:port or auto)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray actor")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="execution provider preference")
    p.add_argument("--retries", type=int, default=3, help="reruns of a chunk whose worker died (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=audit_command)

    r = subparsers.add_parser(
        "audit-report",
        help="cluster an audit's SIS per class: lost, gained and shared patterns (Markdown, PNG, JSON)",
        description="Cluster the first SIS of every model of an audit per target class (DBSCAN over Jaccard "
        "distances), and report which dense clusters the pruned model lost, which it gained, prototypes, and "
        "per-input cluster agreement.",
    )
    r.add_argument("audit", type=Path, help="the audit folder written by `sisguard audit`")
    r.add_argument("--out", type=Path, help="report folder (default: <audit>/report)")
    r.add_argument("--dataset", type=Path, help="the audited dataset, if it moved (checked by content)")
    r.add_argument("--eps", type=float, default=0.3, help="DBSCAN radius, a Jaccard distance (default 0.3)")
    r.add_argument("--min-samples", type=int, default=3, help="DBSCAN core size (default 3)")
    r.add_argument("--lost-ratio", type=float, default=0.25, help="lost/gained below this share (default 0.25)")
    r.set_defaults(func=report_command)


def audit_command(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sisguard.audit.options import AuditOptions
    from sisguard.audit.runner import format_summary, run_audit

    try:
        options = AuditOptions(
            dataset=args.dataset,
            out=args.out,
            config=args.config,
            pair=args.pair,
            threshold=args.threshold,
            max_sis=args.max_sis,
            batch_k=args.batch_k,
            max_evaluations=args.max_evaluations,
            allow_partial=not args.strict_budget,
            max_total_evaluations=args.max_total_evaluations,
            chunk_size=args.chunk_size,
            limit=args.limit,
            workers=args.workers,
            ray_address=args.ray_address,
            num_gpus=args.num_gpus,
            device=args.device,
            retries=args.retries,
            progress=not args.no_progress,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors())
        print(f"sisguard audit: error: {problems}", file=sys.stderr)
        return 2
    try:
        summary = run_audit(options)
    except AuditError as exc:
        print(f"sisguard audit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nsisguard audit: interrupted; the shards in {args.out} are kept, run the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(format_summary(summary))
    print(f"written: {args.out}/shards/*.parquet, {args.out}/summary.json")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from sisguard.audit.clusters import ClusterOptions
    from sisguard.audit.report import write_report

    out = args.out or args.audit / "report"
    try:
        options = ClusterOptions(eps=args.eps, min_samples=args.min_samples, lost_ratio=args.lost_ratio)
        doc = write_report(args.audit, out, options, dataset=args.dataset)
    except AuditError as exc:
        print(f"sisguard audit-report: error: {exc}", file=sys.stderr)
        return 1
    s = doc["summary"]
    print(
        f"{s['clusters']} clusters ({s['kinds'].get('lost', 0)} lost, {s['kinds'].get('gained', 0)} gained) "
        f"in {doc['seconds']:.2f} s; cluster agreement "
        + ", ".join(f"{m} {'-' if v is None else f'{v:.1%}'}" for m, v in doc["cluster_agreement"].items())
    )
    print(f"written: {out}/clusters.md, {out}/clusters.json, {out}/class-*.png")
    return 0
