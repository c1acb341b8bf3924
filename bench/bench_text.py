"""Text benchmark: SIS of a transformer text pair (``input_ids`` + ``attention_mask``, dynamic
sequence axis) over gRPC, side by side with pure ONNX Runtime.

Run from the repository root::

    python bench/bench_text.py            # about 2 min on 2 cores (the first run also trains the pair: 30 s)
    python bench/bench_text.py --quick    # about 1 min

The pair is the test suite's BERT classifier (vocabulary 64, hidden 32, 2 layers, 2 heads, trained
on "positive iff `good` occurs more often than `bad`") and its 50 %-magnitude-pruned copy, built
once and cached under ``.cache/bench/byom-<source hash>/``. Every explanation uses token features
(one per position), a neutral-word baseline (every masked token becomes the filler word ``w7``;
the all-pad baseline is confident on long inputs, as the model never saw them during training),
and τ = 0.9·f_dense(x) for the dense top-1.

* **sequence length 32 and 128**: milliseconds per explanation (both models, client wall time of
  the unary call), and ``sisguard ÷ ORT``: that time ÷ the time pure ONNX Runtime needs for exactly
  the batches the server ran (sizes recorded through the batchers' observer hook), replayed
  in-process with the same feeds, dense and pruned on two threads as the server runs them.
* **mixed lengths under concurrency 16**: inputs of lengths 16, 24, 32 and 48 explained by 16
  concurrent clients against the same inputs one at a time; explanations per second, model runs,
  and how often a run coalesced the steps of several explanations (only equal lengths can share).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import grpc
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the model builders are the test suite's (support.byom_models)

from support.byom_models import BAD, GOOD, ByomModels, build_all, source_key  # noqa: E402

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb  # noqa: E402
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc  # noqa: E402
from sisguard.server.app import App  # noqa: E402
from sisguard.server.config import load_settings  # noqa: E402
from sisguard.server.runtime.model import ModelRuntime  # noqa: E402
from sisguard.server.runtime.providers import choose_providers  # noqa: E402
from sisguard.wire import to_tensor  # noqa: E402

MAX_BATCH = 256
FILLER = 7  # a filler word's id


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sentence(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(7, 40, size=length)
    pos = rng.permutation(length)[:4]
    ids[pos[:3]] = GOOD  # three "good", one "bad": positive
    ids[pos[3:]] = BAD
    return ids.astype(np.int64)


class Recorder:
    """Records every model run (rows, callers) and forwards to the app's own observer."""

    def __init__(self, inner: object | None) -> None:
        self._inner = inner
        self.runs: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def batch_done(self, model: str, rows: int, queue_wait: list[float], compute_seconds: float) -> None:
        self.runs[model].append((rows, len(queue_wait)))
        if self._inner is not None:
            self._inner.batch_done(model, rows, queue_wait, compute_seconds)  # type: ignore[attr-defined]

    def batch_observer(self, pair: str, variant: str) -> Recorder:
        inner = None if self._inner is None else self._inner.batch_observer(pair, variant)  # type: ignore[attr-defined]
        tap = Recorder(inner)
        tap.runs = self.runs
        return tap

    def __getattr__(self, name: str) -> object:
        if self._inner is None:
            return lambda *args, **kwargs: None
        return getattr(self._inner, name)

    def take(self) -> dict[str, list[tuple[int, int]]]:
        out = {k: list(v) for k, v in self.runs.items()}
        self.runs.clear()
        return out


def open_models(m: ByomModels, threads: int) -> dict[str, ModelRuntime]:
    choice = choose_providers(["cpu"], 0)
    return {
        v: ModelRuntime(
            getattr(m, f"text_{v}"),
            choice=choice,
            intra_op_threads=threads,
            inter_op_threads=1,
            input_name=None,
            output_name=None,
            expected_sha256=None,
        )
        for v in ("dense", "pruned")
    }


def replay(models: dict[str, ModelRuntime], runs: dict[str, list[tuple[int, int]]], x: np.ndarray) -> float:
    """Seconds pure ONNX Runtime needs for the recorded runs of one input (two threads)."""
    most = max((n for r in runs.values() for n, _ in r), default=1)
    pool = np.ascontiguousarray(np.repeat(x[None], most, axis=0))

    def run(variant: str) -> None:
        m = models[variant]
        out = [m.signature.output_name]
        for n, _ in runs.get(f"text.{variant}", []):
            m.session.run(out, m.plan.feeds(pool[:n]))

    threads = [threading.Thread(target=run, args=(v,)) for v in ("dense", "pruned")]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def request(ids: np.ndarray) -> pb.ExplainRequest:
    # baseline: the filler word w7 everywhere (no "good", no "bad": negative), attention on every position
    return pb.ExplainRequest(
        pair="text",
        input=to_tensor(ids),
        threshold_relative=0.9,
        baseline=pb.CONSTANT,
        baseline_constant=FILLER,
        max_evaluations=2_000_000,
    )


async def per_length(stub, recorder: Recorder, models, length: int, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    walls, ratios = [], []
    for i in range(n):
        ids = sentence(length, 1000 * length + i)
        recorder.take()
        started = time.perf_counter()
        resp = await stub.Explain(request(ids), timeout=600)
        wall = time.perf_counter() - started
        runs = recorder.take()
        ort_s = min(replay(models, runs, ids) for _ in range(2))
        walls.append(wall)
        ratios.append(wall / ort_s)
        if resp.dense.status != pb.FOUND:
            log(f"[bench] length {length} input {i}: dense status {resp.dense.status}")
    return {"ms": 1000 * statistics.median(walls), "ratio": statistics.median(ratios)}


async def mixed(stub, recorder: Recorder, inputs: list[np.ndarray], concurrency: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    queue = list(inputs)
    recorder.take()

    async def client() -> None:
        while queue:
            ids = queue.pop()
            await stub.Explain(request(ids), timeout=600)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    runs = [r for rs in recorder.take().values() for r in rs]
    coalesced = sum(1 for _, callers in runs if callers > 1)
    return {
        "per_s": len(inputs) / seconds,
        "runs": len(runs),
        "coalesced": coalesced / max(1, len(runs)),
        "callers": statistics.mean(c for _, c in runs) if runs else 0.0,
        "rows": statistics.mean(r for r, _ in runs) if runs else 0.0,
    }


async def main_async(args: argparse.Namespace) -> None:
    models_dir = ROOT / ".cache" / "bench" / f"byom-{source_key()}"
    log(f"[bench] models in {models_dir} (built on first use)")
    m = build_all(models_dir)
    models = open_models(m, args.threads)
    for rt in models.values():
        rt.warm_up(8)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        pair = {
            "name": "text",
            "dense": str(m.text_dense),
            "pruned": str(m.text_pruned),
            "output_kind": "probabilities",
            "max_batch_size": MAX_BATCH,
            "text": {"pad_token_id": 0},
            "explain": {"baseline": "pad_token"},
            "shadow": {"sample_rate": 0.0},
        }
        config.write_text(
            yaml.safe_dump(
                {
                    "host": "127.0.0.1",
                    "port": 0,
                    "metrics_port": None,
                    "runtime": {"providers": ["cpu"], "intra_op_threads": args.threads},
                    "limits": {"explain_cache_size": 0},
                    "pairs": [pair],
                }
            )
        )
        app = App(load_settings(config))
        recorder = Recorder(app.dataplane.observer)
        app.dataplane.observer = recorder  # type: ignore[assignment]  # before start: the batchers get it
        port = await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.SISGuardStub(channel)
                await stub.Explain(request(sentence(8, 0)), timeout=600)  # warm-up
                rows = {}
                for length, n in ((32, 3 if args.quick else 8), (128, 1 if args.quick else 3)):
                    log(f"[bench] length {length}: {n} inputs ...")
                    rows[length] = await per_length(stub, recorder, models, length, n)
                lengths = (16, 24, 32, 48)
                count = 16 if args.quick else 48
                inputs = [sentence(lengths[i % 4], 7 + i) for i in range(count)]
                log(f"[bench] mixed lengths {lengths}: {count} inputs, concurrency 1 and 16 ...")
                one = await mixed(stub, recorder, inputs, 1)
                sixteen = await mixed(stub, recorder, inputs, 16)
        finally:
            await app.stop(grace=0.5)
    load = os.getloadavg()[0]
    print(f"text pair (BERT, hidden 32, 2 layers), {args.threads} ORT thread(s) per model, load {load:.1f}")
    print("| setting | ms / explanation | sisguard ÷ ORT |")
    print("|---|---|---|")
    for length, r in rows.items():
        print(f"| length {length}, d = {length}, first SIS | {r['ms']:.0f} | {r['ratio']:.2f} |")
    print()
    print("| mixed lengths 16/24/32/48 | explanations/s | model runs | runs coalescing ≥ 2 explanations | "
          "explanations per run | rows per run |")
    print("|---|---|---|---|---|---|")
    for label, r in (("concurrency 1", one), ("concurrency 16", sixteen)):
        print(f"| {label} | {r['per_s']:.2f} | {r['runs']} | {100 * r['coalesced']:.0f} % | "
              f"{r['callers']:.2f} | {r['rows']:.0f} |")
    print(f"\nthroughput 16 ÷ 1: {sixteen['per_s'] / one['per_s']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs (about 1 min)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per model")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
