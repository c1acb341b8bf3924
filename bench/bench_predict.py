"""Predict benchmark: gRPC throughput and latency against in-process ONNX Runtime, in one run.

    python bench/bench_predict.py            # 5 s per point
    python bench/bench_predict.py --quick    # 1.5 s per point

Models: the bundled ``digits`` pair and a ResNet-20-style CNN on [3, 32, 32] (random weights,
``sisguard.prune.models.resnet_cifar``, exported once to .cache/bench/). The server runs as its
own process (``sisguard serve``); one asyncio client process sends single-sample Predict requests
(variant DENSE) from 1, 8, 32 and 128 concurrent callers. In-process ONNX Runtime runs the same
model at batch sizes 1, 8, 32 and 128 with the same session options. Printed: samples/s, p50 and
p99 latency, and the ratios the targets speak of.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"
CONCURRENCY = (1, 8, 32, 128)


def cnn_model() -> Path:
    """Export the random-weight CNN once."""
    path = CACHE / "resnet20_predict.onnx"
    if path.exists():
        return path
    import torch

    from sisguard.prune.models import resnet_cifar

    CACHE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = resnet_cifar(num_classes=10, width=16, blocks_per_stage=3).eval()  # ResNet-20 layout
    torch.onnx.export(
        model,
        (torch.zeros(2, 3, 32, 32),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(cnn: Path, port: int, threads: int) -> Path:
    digits = ROOT / "server" / "models" / "digits"
    pairs = [
        {
            "name": "digits",
            "dense": str(digits / "dense.onnx"),
            "pruned": str(digits / "pruned.onnx"),
            "max_batch_size": 128,
        },
        {"name": "cnn", "dense": str(cnn), "pruned": str(cnn), "max_batch_size": 128},
    ]
    config = {
        "host": "127.0.0.1",
        "port": port,
        "metrics_port": None,
        "pairs": pairs,
        "runtime": {"providers": ["cpu"], "intra_op_threads": threads, "inter_op_threads": 1},
    }
    path = CACHE / "bench_predict.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def quantiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


def in_process(
    path: Path, shape: tuple[int, ...], batch: int, seconds: float, threads: int
) -> tuple[float, float, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, *shape), dtype=np.float32)
    for _ in range(5):
        sess.run(None, {"input": x})
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        sess.run(None, {"input": x})
        latencies.append(time.perf_counter() - t)
    total = sum(latencies)
    p50, p99 = quantiles(latencies)
    return batch * len(latencies) / total, p50, p99


async def over_grpc(
    port: int, pair: str, shape: tuple[int, ...], concurrency: int, seconds: float
) -> tuple[float, float, float]:
    import grpc

    from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
    from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
    from sisguard.wire import to_tensor as from_numpy

    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    request = pb.PredictRequest(pair=pair, inputs=from_numpy(x), variant=pb.DENSE)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.SISGuardStub(channel)
        for _ in range(20):
            await stub.Predict(request)
        end = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < end:
                t = time.perf_counter()
                await stub.Predict(request)
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    p50, p99 = quantiles(latencies)
    return len(latencies) / elapsed, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1.5 s per point instead of 5 s")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (0: its default)")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 5.0
    cnn = cnn_model()
    port = free_port()
    config = write_config(cnn, port, args.threads)
    server = subprocess.Popen(
        [sys.executable, "-m", "sisguard.client.cli", "serve", "--config", str(config), "--log-level", "WARNING"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start") from None
                time.sleep(0.2)
        time.sleep(1.0)  # models load after the port binds
        print(f"machine: {os.cpu_count()} CPUs, CPU execution provider, {seconds:.1f} s per point\n")
        models = {
            "digits": (ROOT / "server" / "models" / "digits" / "dense.onnx", (1, 8, 8)),
            "cnn": (cnn, (3, 32, 32)),
        }
        for pair, (path, shape) in models.items():
            print(f"== {pair} {list(shape)} (dense model)")
            print(
                f"{'conc/batch':>10} | {'gRPC samples/s':>14} {'p50 ms':>8} {'p99 ms':>8} | "
                f"{'in-proc samples/s':>17} {'p50 ms':>8} {'p99 ms':>8} | {'thr ratio':>9} {'p50 +ms':>8}"
            )
            for n in CONCURRENCY:
                g_thr, g50, g99 = asyncio.run(over_grpc(port, pair, shape, n, seconds))
                i_thr, i50, i99 = in_process(path, shape, n, seconds, args.threads)
                print(
                    f"{n:>10} | {g_thr:>14.0f} {g50:>8.2f} {g99:>8.2f} | {i_thr:>17.0f} {i50:>8.2f} {i99:>8.2f} | "
                    f"{g_thr / i_thr:>9.2f} {g50 - i50:>+8.2f}"
                )
            print()
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
