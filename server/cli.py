"""``sisguard serve`` and ``sisguard demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
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
    p.add_argument("--config", type=Path, help="YAML config (default: the bundled digits pair)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    p.add_argument("--metrics-port", type=int, help="Prometheus metrics port (default 9464)")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    from sisguard.server.config import load_settings

    overrides = {"host": args.host, "port": args.port, "metrics_port": args.metrics_port, **extra}
    settings = load_settings(args.config, **overrides)
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
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


def _optional(message: object, field: str) -> str:
    return str(getattr(message, field)) if message.HasField(field) else "n/a"  # type: ignore[attr-defined]


async def _demo(settings: Settings) -> None:
    import grpc
    import numpy as np

    from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
    from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
    from sisguard.server.app import App
    from sisguard.server.grpc.tensors import from_numpy

    app = App(settings)
    port = await app.start()
    try:
        pair = settings.pairs[0]
        samples = np.load(pair.dense.parent / "samples.npz")
        x, y = samples["x"][:8], samples["y"][:8]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.SISGuardStub(channel)
            resp = await stub.Predict(pb.PredictRequest(pair=pair.name, inputs=from_numpy(x), variant=pb.BOTH))
            explained = await stub.Explain(
                pb.ExplainRequest(pair=pair.name, input=from_numpy(x[1]), features=pb.PIXEL, max_sis=1)
            )
        print(f"sisguard served pair {pair.name!r} on 127.0.0.1:{port}; Predict(variant=BOTH) on {len(x)} test digits:")
        print(" true  dense (p)      pruned (p)     agree  gap")
        for i in range(len(x)):
            d, p = resp.dense.top1[i], resp.pruned.top1[i]
            dp, pp = resp.dense.top1_probability[i], resp.pruned.top1_probability[i]
            print(
                f"  {y[i]:>3}  {d:>3} ({dp:.3f})  {p:>3} ({pp:.3f})"
                f"  {'yes' if resp.top1_agree[i] else 'NO ':>5}  {resp.confidence_gap[i]:+.3f}"
            )
        a = explained.agreement
        print(
            f"\nExplain(digit {y[1]}, one feature per pixel, tau={explained.threshold:.2f}): "
            f"{explained.num_features} features, target class {explained.target}"
        )
        for name, v in (("dense", explained.dense), ("pruned", explained.pruned)):
            sis = list(v.sis[0].features) if v.sis else []
            print(
                f"  {name:<6} {pb.SISStatus.Name(v.status):<19} SIS {sis} ({len(sis)} pixels, "
                f"{v.evaluations} evaluations, {v.seconds * 1000:.0f} ms)"
            )
        print(
            f"  agreement: IoU {a.iou_first:.2f}, "
            f"dense SIS keeps pruned confident: {_optional(a, 'dense_sis_sufficient_for_pruned')}, "
            f"pruned SIS keeps dense confident: {_optional(a, 'pruned_sis_sufficient_for_dense')}, rank correlation "
            f"{a.rank_correlation:.2f}, divergent: {a.divergent}"
            + (f" ({', '.join(pb.DivergenceReason.Name(r) for r in a.reasons)})" if a.reasons else "")
        )
    finally:
        await app.stop(grace=1.0)


def demo_command(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args, port=args.port if args.port is not None else 0, metrics_port=args.metrics_port)
        if args.log_level is None:
            logging.getLogger().setLevel(logging.WARNING)
        asyncio.run(_demo(settings))
    except _startup_errors() as exc:
        return _fail(str(exc))
    return 0
