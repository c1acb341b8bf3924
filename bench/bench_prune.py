"""ONNX Runtime latency and throughput of dense vs pruned CNNs, measured side by side in one run.

Models: the built-in ``resnet_cifar`` (random weights; speed does not depend on them); its FT
copies at 30/50/70% prune ratio, physically smaller, once with the exact channel counts that
hit the ratio and once with counts rounded to multiples of 16 (which ONNX Runtime's blocked
CPU kernels prefer); a WT copy at 80% (same shapes, zeros inside); and the bundled ``digits``
pair. Models are timed in interleaved rounds (round-robin, so machine noise hits all alike)
and reported as median latency per call, throughput, and the ratio to the dense model
measured in the same run.

    python bench/bench_prune.py                  # defaults: width 32, batches 1 and 16, 2 threads
    python bench/bench_prune.py --width 32 --batches 1,64 --rounds 20 --threads 2

Not a test: it asserts nothing; it prints Markdown tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sisguard.prune.export import export_onnx, make_session
from sisguard.prune.ft import ft_prune
from sisguard.prune.measure import count_flops, count_params
from sisguard.prune.models import resnet_cifar
from sisguard.prune.wt import count_nonzero, wt_prune

REPO = Path(__file__).resolve().parents[1]


def _time_rounds(sessions: dict[str, object], x: np.ndarray, rounds: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each session, interleaving the sessions round by round."""
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():  # warm-up
        for _ in range(3):
            session.run(None, {"input": x})  # type: ignore[attr-defined]
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(calls):
                start = time.perf_counter()
                session.run(None, {"input": x})  # type: ignore[attr-defined]
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _table(title: str, rows: dict[str, dict[str, object]], latencies: dict[int, dict[str, float]],
           reference: str) -> str:
    batches = sorted(latencies)
    head = "| model | prune ratio | params (nonzero) | MFLOPs/sample | " + " | ".join(
        f"b={b} latency ms (× dense) | b={b} samples/s" for b in batches) + " |"
    lines = [f"### {title}", "", head, "|---" * (4 + 2 * len(batches)) + "|"]
    for name, info in rows.items():
        cells = [name, f"{info['ratio']:.2f}", str(info["nonzero"]), f"{info['flops'] / 1e6:.2f}"]
        for b in batches:
            lat = latencies[b][name]
            cells.append(f"{1e3 * lat:.3f} ({lat / latencies[b][reference]:.2f}×)")
            cells.append(f"{b / lat:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_resnet_family(width: int, out: Path, channel_multiple: int
                        ) -> tuple[dict[str, Path], dict[str, dict[str, object]]]:
    """Export dense, FT 30/50/70% (exact channels and multiples of ``channel_multiple``) and WT 80%
    copies of resnet_cifar; return files and size info."""
    torch.manual_seed(0)
    dense = resnet_cifar(num_classes=10, width=width).eval()
    n = count_params(dense)
    example = torch.rand(2, 3, 32, 32)
    models: dict[str, torch.nn.Module] = {"dense": dense}
    for multiple in sorted({1, channel_multiple}):
        suffix = "" if multiple == 1 else f" ×{multiple}ch"
        for ratio in (0.3, 0.5, 0.7):
            models[f"FT {int(ratio * 100)}%{suffix}"] = ft_prune(dense, example, ratio, n, multiple).eval()
    wt = resnet_cifar(num_classes=10, width=width).eval()
    wt.load_state_dict(dense.state_dict())
    wt_prune(wt, 0.8, n)
    models["WT 80%"] = wt
    files, info = {}, {}
    for name, model in models.items():
        path = out / f"{''.join(c if c.isalnum() else '_' for c in name)}.onnx"
        export_onnx(model, (3, 32, 32), path)
        files[name] = path
        info[name] = {"ratio": 1 - count_nonzero(model) / n, "nonzero": count_nonzero(model),
                      "flops": count_flops(model, (3, 32, 32))}
    return files, info


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32, help="resnet_cifar width (default 32)")
    parser.add_argument("--batches", default="1,16", help="batch sizes (default 1,16)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--calls", type=int, default=10, help="calls per model per round (default 10)")
    parser.add_argument("--channel-multiple", type=int, default=16,
                        help="also time FT copies whose channel counts are multiples of this (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--pair", default=str(REPO / "server" / "models" / "digits"),
                        help="a dense/pruned pair directory to time as well ('' to skip)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    import onnxruntime

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, {args.threads} intra-op threads\n")
    with tempfile.TemporaryDirectory() as tmp:
        files, info = build_resnet_family(args.width, Path(tmp), args.channel_multiple)
        sessions = {name: make_session(path, threads=args.threads) for name, path in files.items()}
        latencies = {}
        for b in batches:
            x = np.random.default_rng(0).random((b, 3, 32, 32), dtype=np.float32)
            latencies[b] = _time_rounds(sessions, x, args.rounds, args.calls)
        print(_table(f"resnet_cifar (width {args.width}), 3×32×32", info, latencies, "dense"))
    if args.pair:
        import json

        pair = Path(args.pair)
        manifest = json.loads((pair / "manifest.json").read_text())
        sessions = {k: make_session(pair / f"{k}.onnx", threads=args.threads) for k in ("dense", "pruned")}
        shape = tuple(manifest["data"]["input_shape"])
        info = {"dense": {"ratio": 0.0, "nonzero": manifest["params"]["dense"], "flops": manifest["flops"]["dense"]},
                "pruned": {"ratio": manifest["ratio"], "nonzero": manifest["params"]["pruned_nonzero"],
                           "flops": manifest["flops"]["pruned"]}}
        latencies = {}
        for b in batches:
            x = np.random.default_rng(0).random((b, *shape), dtype=np.float32)
            latencies[b] = _time_rounds(sessions, x, args.rounds, args.calls * 5)
        print()
        print(_table(f"bundled pair '{manifest['name']}' ({manifest['method'].upper()}), {'×'.join(map(str, shape))}",
                     info, latencies, "dense"))


if __name__ == "__main__":
    main()
