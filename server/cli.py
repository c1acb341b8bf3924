"""``sisguard serve`` and ``sisguard demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the heavy imports (onnxruntime, grpc) wait until a command runs
    from sisguard.server.config import Settings

log = logging.getLogger("sisguard")


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = subparsers.add_parser("serve", help="serve model pairs over gRPC")
    _common(serve)
    serve.set_defaults(func=serve_command)
    demo = subparsers.add_parser("demo", help="serve the default pair on a free port and show a prediction")
    _common(demo)
    demo.set_defaults(func=demo_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="YAML config (default: $SISGUARD_CONFIG, else the bundled digits pair)"
    )
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics port (default 9464)")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    from sisguard.server.config import LOG_LEVELS, ConfigError, load_settings

    overrides = {"host": args.host, "port": args.port, "metrics_port": args.metrics_port, **extra}
    config = args.config or (Path(os.environ["SISGUARD_CONFIG"]) if os.environ.get("SISGUARD_CONFIG") else None)
    settings = load_settings(config, **overrides)
    level = (args.log_level or settings.log_level).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {args.log_level[:40]!r} is not one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def _fail(message: str) -> int:
    print(f"sisguard: error: {message}", file=sys.stderr)
    return 1


async def _serve(settings: Settings) -> None:
    from sisguard.server.app import App

    app = App(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    log.info("shutting down: in-flight calls get %.1f s", settings.grace_seconds)
    await app.stop()


def _startup_errors() -> tuple[type[Exception], ...]:
    from sisguard.server.config import ConfigError
    from sisguard.server.runtime.model import ModelLoadError

    return (ConfigError, ModelLoadError, OSError)


def serve_command(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        asyncio.run(_serve(settings))
    except _startup_errors() as exc:
        return _fail(str(exc))
    return 0


async def _demo(settings: Settings) -> None:
    import numpy as np

    from sisguard.client import AsyncClient
    from sisguard.server.app import App
    from sisguard.server.grpc.auth import load_tokens

    app = App(settings)
    port = await app.start()
    try:
        pair = settings.pairs[0]
        samples = np.load(pair.dense.parent / "samples.npz")
        x, y = samples["x"][:8], samples["y"][:8]
        tokens = load_tokens(settings).tokens  # YAML, SISGUARD_TOKENS and tokens_file, merged
        async with AsyncClient(f"127.0.0.1:{port}", token=tokens[0].decode() if tokens else None) as client:
            pred = await client.predict(pair.name, x, variant="both")
            explained = await client.explain(pair.name, x[1], features="pixel")
    finally:
        await app.stop(grace=1.0)
    dense, pruned = pred.dense, pred.pruned
    if dense is None or pruned is None or pred.top1_agree is None or pred.confidence_gap is None:
        raise RuntimeError("Predict(both) returned only one variant")
    print(f"sisguard served pair {pair.name!r} on 127.0.0.1:{port}; Predict(variant=both) on {len(x)} test digits:")
    print(" true  dense (p)      pruned (p)     agree  gap")
    for i in range(len(x)):
        print(
            f"  {y[i]:>3}  {dense.top1[i]:>3} ({dense.top1_probability[i]:.3f})"
            f"  {pruned.top1[i]:>3} ({pruned.top1_probability[i]:.3f})"
            f"  {'yes' if pred.top1_agree[i] else 'NO ':>5}  {pred.confidence_gap[i]:+.3f}"
        )
    print(
        f"\nExplain(digit {y[1]}, one feature per pixel, tau={explained.threshold:.2f}): "
        f"{explained.num_features} features, target class {explained.target}"
    )
    for name, v in explained.variants.items():
        sis = v.sis[0].features.tolist() if v.sis else []
        print(
            f"  {name:<6} {v.status:<19} SIS {sis} ({len(sis)} pixels, "
            f"{v.evaluations} evaluations, {v.seconds * 1000:.0f} ms)"
        )
    a = explained.agreement
    if a is not None:
        print(
            f"  agreement: IoU {a.iou_first:.2f}, dense SIS keeps pruned confident: "
            f"{a.dense_sis_sufficient_for_pruned}, pruned SIS keeps dense confident: "
            f"{a.pruned_sis_sufficient_for_dense}, rank correlation {a.rank_correlation:.2f}, "
            f"divergent: {a.divergent}" + (f" ({', '.join(a.reasons)})" if a.reasons else "")
        )


def demo_command(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args, port=args.port if args.port is not None else 0)
        # the demo exports metrics only when asked, so it runs beside a `sisguard serve`
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
        if args.log_level is None:
            logging.getLogger().setLevel(logging.WARNING)
        asyncio.run(_demo(settings))
    except _startup_errors() as exc:
        return _fail(str(exc))
    return 0
