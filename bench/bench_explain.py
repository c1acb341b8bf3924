"""Explain benchmark: SIS of dense/pruned pairs over gRPC, side by side with the plain loop and pure ONNX Runtime.

Run from the repository root::

    python bench/bench_explain.py            # default run: about 10 min on 2 cores
    python bench/bench_explain.py --quick    # short run: about 3 min

The first run also trains and prunes the two CNN pairs (about 2 min on 2 cores) and caches them
under ``.cache/bench/``; the timings above are for later runs.

One run starts a real sisguard server on a free loopback port (``sisguard.v1.SISGuard/Explain``
through the generated stubs) serving four pairs, and measures, per setting:

* ``digits`` — the bundled pair, input ``[1, 8, 8]``, one feature per pixel (d = 64): the first
  SIS (``max_sis=1``) and the full collection (``max_sis=64``, i.e. until the rest of the input is
  no longer sufficient);
* ``cnn32`` — ``resnet_cifar(width=8)`` trained briefly on ``synthetic32`` and FT-pruned to 50 %
  with ``sisguard.prune``, input ``[3, 32, 32]``, 4×4 patches (d = 64), first SIS;
* ``small32`` — a small CNN (two strided convolutions, a max-pool, a linear layer) on the same
  data, WT-pruned to 50 %: 2×2 patches (d = 256) and pixels (d = 1024), first SIS.

Columns: milliseconds per explanation of the pair (both models, client-side wall time of the unary
call) and process CPU time, for sisguard and for a plain in-process implementation written the
straightforward way (per step the masks of every remaining feature via ``np.where`` over the whole
step, one model call per step, dense then pruned, ONNX Runtime sessions with the server's options);
``plain ÷ sisguard`` for both (targets ≥ 2× wall, ≥ 1 CPU). ``sisguard ÷ ORT``: explain time ÷ the
time pure ONNX Runtime needs for exactly the batches the server ran (their number and sizes are
recorded through the batchers' observer hook), replayed in-process, dense and pruned on two threads
at once as the server runs them (target ≤ 1.15). The plain implementation also checks the server's
answer: ``same`` counts explanations whose SIS collections are identical.

τ is relative: τ = 0.9·f_dense(x) for the dense top-1 class (baseline: zeros), so the dense model
always reaches τ on the full input and has a SIS; ``empty`` counts SIS that came out empty (the
all-masked baseline alone already reaches τ) and ``no SIS`` variants that were not confident
(the pruned model's f(x) < τ).

The header reports the load average and the machine's *parallel capacity*: how much faster the two
cnn32 models run side by side on two threads than one after the other (about 2 on two idle cores).
Running the two models at once is the server's structural edge over the plain loop, so this bounds
the wall-time speed-up on a compute-bound pair.

In-process tables: the same engine with a hop through the event loop per step against the step
scheduler, and where one digits step's CPU time goes (the dense model alone, one search at a time):
the rows, ``ModelRuntime.run``, the target's probability and the search's bookkeeping timed apart
with the thread's CPU clock, then the same searches through a ``ModelWorker`` (process CPU per step
and its ONNX Runtime part), so the Python cost per step is a number, not a guess.

Then: explanations per second on digits with 1, 4 and 16 concurrent clients (distinct inputs)
against the plain loop explaining the same inputs one after another, measured right before each
level (target ≥ 4× at 16), with the rows per model run the server's step scheduler reached; the
resident-set growth of the serving process during one d = 4096 explanation (a linear 1×64×64 pair,
batched(16) mode: exact mode would need 8.4 M rows per model; the memory pattern is the same,
target ≤ +200 MB); and the ``batched(k)`` table on the digits test images: evaluations saved against
``exact`` and the Jaccard overlap (IoU) of the first SIS with the exact one, per model, over the
inputs whose exact SIS is non-empty.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import yaml

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.batching.batcher import Batcher
from sisguard.server.config import load_settings
from sisguard.server.runtime.model import ModelRuntime
from sisguard.server.runtime.providers import choose_providers
from sisguard.wire import to_tensor as from_numpy

ROOT = Path(__file__).resolve().parents[1]
DIGITS_DIR = ROOT / "server" / "models" / "digits"
CACHE = ROOT / ".cache" / "bench"
RELATIVE_TAU = 0.9
MAX_BATCH = 64
BUDGET = 1_000_000  # evaluations per variant: ample for every setting here

# How the CNN pair is made; a change here makes a new cache entry.
CNN_RECIPE = {
    "arch": "resnet_cifar",
    "width": 8,
    "classes": 8,
    "data": "synthetic32",
    "n": 2000,
    "seed": 0,
    "method": "ft",
    "ratio": 0.5,
    "cycles": 2,
    "train_epochs": 4,
    "train_lr": 3e-3,
    "retrain_epochs": 2,
    "retrain_lr": 1e-3,
}


# The small 3×32×32 CNN (two strided convolutions, a max-pool, one linear layer; ~10 µs a row on one
# core), weight-thresholded to 50 %: cheap enough per row for 2×2 patches (d = 256) and pixels (d = 1024).
SMALL_RECIPE = {
    "width": 8,
    "classes": 8,
    "n": 2000,
    "seed": 0,
    "method": "wt",
    "ratio": 0.5,
    "cycles": 1,
    "train_epochs": 12,
    "train_lr": 1e-2,
    "retrain_epochs": 2,
    "retrain_lr": 1e-3,
}
WIDE_SIDE = 64  # the memory check's input: 1×64×64, one feature per pixel (d = 4096)
WIDE_BATCH_K = 16  # exact mode at d = 4096 needs 8.4 M rows per model; batched(16) has the same memory pattern


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the CNN pair --------------------------------------------------------------------------------


def cnn_pair() -> Path:
    """Train, FT-prune and export the CNN pair once; later runs reuse ``.cache/bench/cnn32-<key>``."""
    key = "-".join(str(v) for k, v in CNN_RECIPE.items() if k not in ("arch", "data", "method"))
    out = CACHE / f"cnn32-{key}"
    if (out / "dense.onnx").is_file() and (out / "pruned.onnx").is_file() and (out / "manifest.json").is_file():
        return out
    from sisguard.prune.data import synthetic32
    from sisguard.prune.models import resnet_cifar
    from sisguard.prune.pipeline import PruneConfig, run_prune
    from sisguard.prune.train import TrainConfig

    r = CNN_RECIPE
    log(f"[cnn32] training and pruning the CNN pair (once; cached in {out}) ...")
    started = time.monotonic()
    data = synthetic32(int(r["n"]), seed=int(r["seed"]))
    model = resnet_cifar(num_classes=int(r["classes"]), width=int(r["width"]))
    config = PruneConfig(
        method=str(r["method"]),
        ratio=float(r["ratio"]),
        cycles=int(r["cycles"]),
        train=TrainConfig(epochs=int(r["train_epochs"]), lr=float(r["train_lr"])),
        retrain=TrainConfig(epochs=int(r["retrain_epochs"]), lr=float(r["retrain_lr"])),
        seed=int(r["seed"]),
    )
    tmp = out.with_name(out.name + ".tmp")
    run_prune(model, data, config, tmp, name="cnn32")
    tmp.rename(out)
    log(f"[cnn32] done in {time.monotonic() - started:.0f} s")
    return out


def small_pair() -> Path:
    """Train and prune the small CNN pair once; later runs reuse ``.cache/bench/small32-<key>``."""
    key = "-".join(str(v) for v in SMALL_RECIPE.values())
    out = CACHE / f"small32-{key}"
    if (out / "dense.onnx").is_file() and (out / "pruned.onnx").is_file() and (out / "manifest.json").is_file():
        return out
    from torch import nn

    from sisguard.prune.data import synthetic32
    from sisguard.prune.pipeline import PruneConfig, run_prune
    from sisguard.prune.train import TrainConfig

    r = SMALL_RECIPE
    w = int(r["width"])
    log(f"[small32] training and pruning the small CNN pair (once; cached in {out}) ...")
    started = time.monotonic()
    data = synthetic32(int(r["n"]), seed=int(r["seed"]))
    model = nn.Sequential(
        nn.Conv2d(3, w, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * w * 4 * 4, int(r["classes"])),
    )
    config = PruneConfig(
        method=str(r["method"]),
        ratio=float(r["ratio"]),
        cycles=int(r["cycles"]),
        train=TrainConfig(epochs=int(r["train_epochs"]), lr=float(r["train_lr"])),
        retrain=TrainConfig(epochs=int(r["retrain_epochs"]), lr=float(r["retrain_lr"])),
        seed=int(r["seed"]),
    )
    tmp = out.with_name(out.name + ".tmp")
    run_prune(model, data, config, tmp, name="small32", control=False)
    tmp.rename(out)
    log(f"[small32] done in {time.monotonic() - started:.0f} s")
    return out


def wide_pair() -> Path:
    """A linear 1×64×64 → 2 logits pair (pruned: half its weights zeroed), built with onnx.helper.
    Positive weights on class 0 and a bias towards class 1: inputs in [0, 1) are class 0 with about
    0.8 confidence, the all-zero baseline is class 1 (so every explanation runs BackSelect)."""
    out = CACHE / f"wide{WIDE_SIDE}-v2"
    if (out / "dense.onnx").is_file() and (out / "pruned.onnx").is_file():
        return out
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n = WIDE_SIDE * WIDE_SIDE
    weights = np.stack([8.0 * np.abs(rng.normal(size=n)) / n, rng.normal(0, 0.1, size=n) / np.sqrt(n)], axis=1)
    weights = weights.astype(np.float32)
    pruned = np.where(np.abs(weights) >= np.median(np.abs(weights), axis=0), weights, 0).astype(np.float32)
    bias = np.array([0.0, 2.0], dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    for name, w in (("dense", weights), ("pruned", pruned)):
        graph = helper.make_graph(
            [
                helper.make_node("Flatten", ["x"], ["flat"], axis=1),
                helper.make_node("MatMul", ["flat", "w"], ["scores"]),
                helper.make_node("Add", ["scores", "b"], ["logits"]),
            ],
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, WIDE_SIDE, WIDE_SIDE])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
            [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(out / f"{name}.onnx"))
    return out


def cnn_inputs(n: int) -> np.ndarray:
    """Test images of synthetic32 (a different seed from training)."""
    from sisguard.prune.data import synthetic32

    return synthetic32(max(8, 4 * n), seed=1).x_test[:n]


def digits_inputs(n: int | None) -> np.ndarray:
    """The digits test split (450 images); ``n`` of them, spread over the split."""
    from sisguard.prune.data import load_digits

    x = load_digits().x_test
    if n is None or n >= len(x):
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


# -- recording the server's batches ------------------------------------------------------------


class BatchRecorder:
    """Wraps the service's observer (the metrics, when the app has them): records the size of
    every batch each model ran and forwards every report unchanged, so the production path is
    what gets timed."""

    def __init__(self, inner: object | None) -> None:
        self._inner = inner
        self.batches: dict[str, list[int]] = defaultdict(list)

    def batch_done(self, model: str, rows: int, queue_wait: list[float], compute_seconds: float) -> None:
        self.batches[model].append(rows)
        if self._inner is not None:
            self._inner.batch_done(model, rows, queue_wait, compute_seconds)  # type: ignore[attr-defined]

    def batch_observer(self, pair: str, variant: str) -> BatchRecorder:
        """The observer of one model's batcher: records into this recorder, reports to the inner one's."""
        inner = None if self._inner is None else self._inner.batch_observer(pair, variant)  # type: ignore[attr-defined]
        tap = BatchRecorder(inner)
        tap.batches = self.batches
        return tap

    def __getattr__(self, name: str) -> object:
        if self._inner is None:
            return lambda *args, **kwargs: None
        return getattr(self._inner, name)

    def take(self) -> dict[str, list[int]]:
        out = dict(self.batches)
        self.batches.clear()  # in place: the batchers' taps share it
        return out


# -- pure ONNX Runtime and the plain implementation --------------------------------------------


@dataclass
class PairSessions:
    """The pair's two models, opened exactly as the server opens them (same session options)."""

    name: str
    dense: ModelRuntime
    pruned: ModelRuntime
    kind: str = "logits"

    @classmethod
    def open(cls, name: str, folder: Path, threads: int) -> PairSessions:
        choice = choose_providers(["cpu"], 0)
        models = [
            ModelRuntime(
                folder / f"{v}.onnx",
                choice=choice,
                intra_op_threads=threads,
                inter_op_threads=1,
                input_name=None,
                output_name=None,
                expected_sha256=None,
            )
            for v in ("dense", "pruned")
        ]
        for m in models:
            m.warm_up(MAX_BATCH)
        return cls(name, *models)

    def runtime(self, variant: str) -> ModelRuntime:
        return self.dense if variant == "dense" else self.pruned


def replay(sessions: PairSessions, batches: dict[str, list[int]], x: np.ndarray) -> float:
    """Seconds pure ONNX Runtime needs for the recorded batches (dense and pruned on two threads)."""
    rows = max((n for sizes in batches.values() for n in sizes), default=1)
    pool = np.ascontiguousarray(np.repeat(x[None], rows, axis=0))

    def run(variant: str) -> None:
        m = sessions.runtime(variant)
        sess, feed, out = m.session, m.signature.input_name, [m.signature.output_name]
        for n in batches.get(f"{sessions.name}.{variant}", []):
            sess.run(out, {feed: pool[:n]})

    threads = [threading.Thread(target=run, args=(v,)) for v in ("dense", "pruned")]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def parallel_capacity(sessions: PairSessions, batches: int = 12) -> float:
    """How much faster the machine runs the two models side by side than one after the other
    (ceiling of what running them concurrently can win; about 2 on two idle cores)."""
    x = np.zeros((MAX_BATCH, *sessions.dense.signature.input_shape), dtype=sessions.dense.signature.input_dtype)

    def run(m: ModelRuntime) -> None:
        for _ in range(batches):
            m.session.run([m.signature.output_name], {m.signature.input_name: x})

    best_seq = best_par = np.inf
    for _ in range(2):
        started = time.perf_counter()
        run(sessions.dense)
        run(sessions.pruned)
        best_seq = min(best_seq, time.perf_counter() - started)
        threads = [threading.Thread(target=run, args=(m,)) for m in (sessions.dense, sessions.pruned)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best_par = min(best_par, time.perf_counter() - started)
    return float(best_seq / best_par)


def _softmax_column(logits: np.ndarray, target: int) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True), dtype=np.float64)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)[:, target].astype(np.float64)


def plain_sis(
    score: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    tau: float,
    max_sis: int,
) -> tuple[str, list[tuple[int, ...]], int]:
    """SIS written the straightforward way: per BackSelect step one boolean mask per remaining
    feature, ``np.where`` over the whole step, one model call per step. Returns status, the
    collection (most important feature first) and the evaluations used."""
    d = int(groups.max()) + 1
    full, base = score(np.stack([x, baseline]))
    evals = 2
    if not full >= tau:
        return "not_confident", [], evals
    if base >= tau:
        return "baseline_sufficient", [()], evals
    masked = np.zeros(d, dtype=bool)  # features of the SIS found so far
    collection: list[tuple[int, ...]] = []
    for round_ in range(max_sis):
        if masked.all():
            break
        if round_ > 0:
            evals += 1
            if not score(np.where(masked[groups], baseline, x)[None])[0] >= tau:
                break
        removed = masked.copy()
        order: list[int] = []
        after: list[float] = []
        while not removed.all():
            remaining = np.flatnonzero(~removed)
            masks = np.repeat(removed[None], remaining.size, axis=0)
            masks[np.arange(remaining.size), remaining] = True
            batch = np.where(masks[:, groups], baseline[None], x[None])
            s = score(batch)
            evals += remaining.size
            best = int(np.argmax(np.where(np.isnan(s), -np.inf, s)))
            removed[remaining[best]] = True
            order.append(int(remaining[best]))
            after.append(float(s[best]))
        k = max((j for j in range(1, len(after)) if after[j - 1] >= tau), default=0)
        sis = tuple(order[k:][::-1])
        collection.append(sis)
        masked[list(sis)] = True
    return "found", collection, evals


def plain_pair(
    sessions: PairSessions, x: np.ndarray, groups: np.ndarray, max_sis: int
) -> tuple[dict[str, tuple[str, list[tuple[int, ...]]]], float]:
    """Both models explained one after the other with :func:`plain_sis`; returns results and seconds."""
    started = time.perf_counter()
    baseline = np.zeros_like(x)

    def scorer(variant: str, target: int) -> Callable[[np.ndarray], np.ndarray]:
        m = sessions.runtime(variant)
        sess, feed, out = m.session, m.signature.input_name, [m.signature.output_name]
        return lambda batch: _softmax_column(sess.run(out, {feed: batch})[0], target)

    d_run = sessions.dense.session
    logits = d_run.run([sessions.dense.signature.output_name], {sessions.dense.signature.input_name: x[None]})[0]
    target = int(np.argmax(logits[0]))
    tau = RELATIVE_TAU * float(_softmax_column(logits, target)[0])
    results: dict[str, tuple[str, list[tuple[int, ...]]]] = {}
    for variant in ("dense", "pruned"):
        status, collection, _ = plain_sis(scorer(variant, target), x, baseline, groups, tau, max_sis)
        results[variant] = (status, collection)
    # cross-sufficiency, as the server computes it: each model's first SIS on the other model
    for variant, other in (("dense", "pruned"), ("pruned", "dense")):
        coll = results[variant][1]
        if coll:
            keep = np.zeros(int(groups.max()) + 1, dtype=bool)
            keep[list(coll[0])] = True
            scorer(other, target)(np.where(keep[groups], x, baseline)[None])
    return results, time.perf_counter() - started


# -- the gRPC side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    label: str
    pair: str
    features: int  # pb.FeatureKind
    patch: tuple[int, int]
    max_sis: int
    inputs: np.ndarray
    repeats: int | None = None  # timed rounds per input; None: the run's --repeats

    def groups(self) -> np.ndarray:
        from sisguard.sis import patch_groups, pixel_groups

        shape = self.inputs.shape[1:]
        if self.features == pb.PIXEL:
            return pixel_groups(shape)
        return patch_groups(shape, *self.patch)


def request(
    setting: Setting, x: np.ndarray, *, batch_k: int = 1, max_sis: int | None = None, budget: int = 0
) -> pb.ExplainRequest:
    req = pb.ExplainRequest(
        pair=setting.pair,
        input=from_numpy(x),
        threshold_relative=RELATIVE_TAU,
        features=setting.features,
        baseline=pb.ZEROS,
        max_sis=max_sis or setting.max_sis,
        variants=pb.BOTH,
        max_evaluations=budget,
    )
    if setting.features == pb.PATCH:
        req.patch_height, req.patch_width = setting.patch
    if batch_k > 1:
        req.mode, req.batch_k = pb.BATCHED, batch_k
    return req


@dataclass
class Row:
    setting: str
    d: int
    n: int = 0
    grpc_ms: list[float] = field(default_factory=list)
    ort_ms: list[float] = field(default_factory=list)
    plain_ms: list[float] = field(default_factory=list)
    plain_cpu_ms: list[float] = field(default_factory=list)
    grpc_cpu_ms: list[float] = field(default_factory=list)
    ort_cpu_ms: list[float] = field(default_factory=list)
    evaluations: list[int] = field(default_factory=list)
    sis: int = 0
    empty: int = 0
    no_sis: int = 0
    same: int = 0


def collection_of(v: pb.VariantExplanation) -> tuple[str, list[tuple[int, ...]]]:
    status = pb.SISStatus.Name(v.status).lower()
    return status, [tuple(s.features) for s in v.sis]


async def time_setting(
    stub: pb_grpc.SISGuardStub, recorder: BatchRecorder, sessions: PairSessions, setting: Setting, repeats: int
) -> Row:
    """Per input, ``repeats`` rounds of gRPC explain → ORT replay → plain, interleaved; the fastest
    of each is kept (a shared machine only ever adds time). Repeats differ in ``max_evaluations``
    (always ample), so no request is a cache hit."""
    groups = setting.groups()
    row = Row(setting.label, int(groups.max()) + 1)
    # warm-up: one explanation of a perturbed input (distinct bytes: never a cache hit later)
    # (batched mode where d is large: it warms the same code paths at a fraction of the cost)
    warm_k = 64 if row.d > 256 else 1
    await stub.Explain(request(setting, np.clip(setting.inputs[0] * 0.98, 0, None), batch_k=warm_k, budget=BUDGET - 1))
    recorder.take()
    for x in setting.inputs:
        best = {"grpc": np.inf, "ort": np.inf, "plain": np.inf, "grpc_cpu": np.inf, "ort_cpu": np.inf}
        best["plain_cpu"] = np.inf
        for rep in range(setting.repeats or repeats):
            cpu, started = time.process_time(), time.perf_counter()
            resp = await stub.Explain(request(setting, x, budget=BUDGET + rep))
            best["grpc"] = min(best["grpc"], time.perf_counter() - started)
            best["grpc_cpu"] = min(best["grpc_cpu"], time.process_time() - cpu)
            if resp.cached:
                raise RuntimeError("benchmark request was served from the cache")
            batches = recorder.take()
            cpu = time.process_time()
            best["ort"] = min(best["ort"], replay(sessions, batches, x))
            best["ort_cpu"] = min(best["ort_cpu"], time.process_time() - cpu)
            cpu = time.process_time()
            plain, plain_s = plain_pair(sessions, x, groups, setting.max_sis)
            best["plain"] = min(best["plain"], plain_s)
            best["plain_cpu"] = min(best["plain_cpu"], time.process_time() - cpu)
        row.n += 1
        row.grpc_ms.append(1e3 * best["grpc"])
        row.ort_ms.append(1e3 * best["ort"])
        row.plain_ms.append(1e3 * best["plain"])
        row.grpc_cpu_ms.append(1e3 * best["grpc_cpu"])
        row.plain_cpu_ms.append(1e3 * best["plain_cpu"])
        row.ort_cpu_ms.append(1e3 * best["ort_cpu"])
        row.evaluations.append(resp.dense.evaluations + resp.pruned.evaluations)
        same = True
        for name, v in (("dense", resp.dense), ("pruned", resp.pruned)):
            status, coll = collection_of(v)
            row.sis += len(coll)
            row.empty += sum(1 for s in coll if not s)
            row.no_sis += status == "not_confident"
            same &= (status, coll) == plain[name]
        row.same += same
    return row


@dataclass
class BatchedRow:
    k: int
    evals_exact: int = 0
    evals: int = 0
    ms: list[float] = field(default_factory=list)
    iou: dict[str, list[float]] = field(default_factory=lambda: {"dense": [], "pruned": []})
    identical: dict[str, int] = field(default_factory=lambda: {"dense": 0, "pruned": 0})


async def batched_table(stub: pb_grpc.SISGuardStub, setting: Setting, ks: Sequence[int]) -> list[BatchedRow]:
    rows = {k: BatchedRow(k) for k in (1, *ks)}
    for x in setting.inputs:
        exact: dict[str, tuple[int, ...] | None] = {}
        for k in (1, *ks):
            started = time.perf_counter()
            resp = await stub.Explain(request(setting, x, batch_k=k, max_sis=1))
            row = rows[k]
            row.ms.append(1e3 * (time.perf_counter() - started))
            for name in ("dense", "pruned"):
                v = getattr(resp, name)
                first = tuple(v.sis[0].features) if v.sis else None
                row.evals += v.evaluations
                if k == 1:
                    exact[name] = first
                    continue
                if first is not None and exact[name]:  # inputs with a non-empty exact SIS
                    a, b = set(first), set(exact[name] or ())
                    row.iou[name].append(len(a & b) / len(a | b))
                    row.identical[name] += first == exact[name]
    for k in ks:
        rows[k].evals_exact = rows[1].evals
    return [rows[k] for k in (1, *ks)]


@dataclass
class ConcurrencyRow:
    concurrency: int
    explanations: int
    rate: float
    plain_rate: float
    rows_per_run: float
    runs_per_explanation: float


async def concurrency_table(
    stub: pb_grpc.SISGuardStub,
    recorder: BatchRecorder,
    sessions: PairSessions,
    setting: Setting,
    levels: Sequence[int],
) -> list[ConcurrencyRow]:
    """Explanations per second with ``c`` clients at once, each taking the next of the setting's
    inputs; right before each level the plain loop explains the same inputs one after another."""
    groups = setting.groups()
    out: list[ConcurrencyRow] = []
    for level, c in enumerate(levels):
        started = time.perf_counter()
        for x in setting.inputs:
            plain_pair(sessions, x, groups, setting.max_sis)
        plain_rate = len(setting.inputs) / (time.perf_counter() - started)
        recorder.take()
        todo = list(enumerate(setting.inputs))

        async def client(todo: list[tuple[int, np.ndarray]], level: int) -> None:
            while todo:
                i, x = todo.pop()
                # a distinct budget per level and input: never served from the cache
                resp = await stub.Explain(request(setting, x, budget=BUDGET + 1000 * (level + 1) + i))
                if resp.cached:
                    raise RuntimeError("benchmark request was served from the cache")

        started = time.perf_counter()
        await asyncio.gather(*(client(todo, level) for _ in range(c)))
        rate = len(setting.inputs) / (time.perf_counter() - started)
        sizes = [n for model, runs in recorder.take().items() if model.startswith(f"{setting.pair}.") for n in runs]
        out.append(
            ConcurrencyRow(
                c, len(setting.inputs), rate, plain_rate, statistics.mean(sizes), len(sizes) / len(setting.inputs)
            )
        )
    return out


@dataclass
class HandOffRow:
    setting: str
    n: int
    per_step_ms: list[float] = field(default_factory=list)
    per_step_cpu_ms: list[float] = field(default_factory=list)
    scheduler_ms: list[float] = field(default_factory=list)
    scheduler_cpu_ms: list[float] = field(default_factory=list)
    same: int = 0


async def _engine_pair(
    batchers: dict[str, Batcher], x: np.ndarray, groups: np.ndarray, target: int, tau: float, per_step: bool
) -> list[tuple[int, ...]]:
    """Both models' first BackSelect order, concurrently, through their batchers; ``per_step`` hides
    the step scheduler behind a plain async score function (one event-loop hop per step)."""
    from sisguard.sis import SISParams, find_sis

    params = SISParams(threshold=tau, chunk_size=MAX_BATCH)
    baseline = np.zeros_like(x)
    runs = []
    for b in batchers.values():
        fn = b.score_fn(lambda raw: _softmax_column(raw, target))

        async def step(rows: np.ndarray, fn: Callable[[np.ndarray], object] = fn) -> np.ndarray:
            return await fn(rows)  # type: ignore[misc, no-any-return]

        runs.append(find_sis(x, baseline, groups, step if per_step else fn, params))
    return [r.backselect[0].order if r.backselect else () for r in await asyncio.gather(*runs)]


async def hand_off_table(sessions: PairSessions, setting: Setting, repeats: int) -> HandOffRow:
    """The engine in-process, both models at once, through one batcher per model: every BackSelect
    step handed to the model's thread and back through the event loop (``await score(rows)`` per
    step, as find_sis drives a plain score function) against the step scheduler running whole
    searches on the models' threads (what the server does); interleaved, best of ``repeats``."""
    groups = setting.groups()
    batchers = {
        v: Batcher(f"{setting.pair}.{v}", sessions.runtime(v).run, max_batch_size=MAX_BATCH)
        for v in ("dense", "pruned")
    }
    for b in batchers.values():
        b.start()
    row = HandOffRow(setting.label, len(setting.inputs))
    try:
        for x in setting.inputs:
            logits = sessions.dense.run(x[None])
            target = int(np.argmax(logits[0]))
            tau = RELATIVE_TAU * float(_softmax_column(logits, target)[0])
            best = {"a": np.inf, "ac": np.inf, "b": np.inf, "bc": np.inf}
            for _ in range(repeats):
                orders = []
                for key, per_step in (("a", True), ("b", False)):
                    cpu, started = time.process_time(), time.perf_counter()
                    orders.append(await _engine_pair(batchers, x, groups, target, tau, per_step))
                    best[key] = min(best[key], time.perf_counter() - started)
                    best[key + "c"] = min(best[key + "c"], time.process_time() - cpu)
            row.per_step_ms.append(1e3 * best["a"])
            row.per_step_cpu_ms.append(1e3 * best["ac"])
            row.scheduler_ms.append(1e3 * best["b"])
            row.scheduler_cpu_ms.append(1e3 * best["bc"])
            row.same += orders[0] == orders[1]
    finally:
        for b in batchers.values():
            await b.close()
    return row


@dataclass(frozen=True)
class StepCostRow:
    """CPU microseconds per BackSelect step of one model, by part (see :func:`step_costs`)."""

    setting: str
    steps: int
    rows_us: float
    ort_us: float
    score_us: float
    search_us: float
    worker_total_us: float
    worker_ort_us: float


async def step_costs(sessions: PairSessions, setting: Setting, repeats: int) -> StepCostRow:
    """Where the CPU time of an explanation step goes, for the dense model alone, one search at a time.

    First the server's pieces driven by hand on one thread, each timed with the thread's CPU clock:
    the step's rows built into a reused buffer (``ScoreRequest.rows(out=)``), ``ModelRuntime.run``
    (ONNX Runtime and its Python binding), the target's probability (``target_probability``, what
    ``Pair.score_fn`` feeds) and the search's bookkeeping (``SISSearch.feed``: choosing, masking,
    the next request). Then the same searches through a ``ModelWorker`` as the server runs them
    (the event loop awaiting each search): process CPU per step, and the ONNX Runtime part of it.
    Best of ``repeats`` rounds over the setting's inputs."""
    from sisguard.server.batching.steps import ModelWorker
    from sisguard.server.probabilities import target_probability
    from sisguard.sis import SISParams, SISSearch

    model = sessions.dense
    groups = setting.groups()
    cases = []
    for x in setting.inputs:
        logits = model.run(x[None])
        target = int(np.argmax(logits[0]))
        cases.append((x, target, RELATIVE_TAU * float(_softmax_column(logits, target)[0])))
    buf = np.empty((MAX_BATCH, *model.signature.input_shape), dtype=model.signature.input_dtype)

    def by_hand() -> tuple[int, dict[str, int]]:
        parts = {"rows": 0, "ort": 0, "score": 0, "search": 0}
        steps = 0
        clock = time.thread_time_ns
        for x, target, tau in cases:
            search = SISSearch(x, np.zeros_like(x), groups, SISParams(threshold=tau, max_sis=setting.max_sis))
            while (req := search.request) is not None:
                t0 = clock()
                rows = req.rows(0, req.size, out=buf[: req.size])
                t1 = clock()
                raw = model.run(rows)
                t2 = clock()
                scores = target_probability(raw, "logits", target)
                t3 = clock()
                search.feed(scores)
                t4 = clock()
                parts["rows"] += t1 - t0
                parts["ort"] += t2 - t1
                parts["score"] += t3 - t2
                parts["search"] += t4 - t3
                steps += 1
        return steps, parts

    ort_ns = [0]

    def timed_run(batch: np.ndarray) -> np.ndarray:
        t0 = time.thread_time_ns()
        out = model.run(batch)
        ort_ns[0] += time.thread_time_ns() - t0
        return out

    async def through_worker(worker: ModelWorker) -> None:
        for x, target, tau in cases:
            search = SISSearch(x, np.zeros_like(x), groups, SISParams(threshold=tau, max_sis=setting.max_sis))
            await worker.search(search, lambda raw, t=target: target_probability(raw, "logits", t))

    best: dict[str, float] = {}
    worker = ModelWorker("bench", timed_run, max_rows=MAX_BATCH)
    try:
        by_hand()  # warm
        steps = 0
        for _ in range(max(repeats, 3)):
            steps, parts = by_hand()
            for k, v in parts.items():
                best[k] = min(best.get(k, np.inf), v / 1e3 / steps)
            ort_ns[0] = 0
            cpu = time.process_time_ns()
            await through_worker(worker)
            best["total"] = min(best.get("total", np.inf), (time.process_time_ns() - cpu) / 1e3 / steps)
            best["worker_ort"] = min(best.get("worker_ort", np.inf), ort_ns[0] / 1e3 / steps)
    finally:
        worker.shutdown(wait=True)
    return StepCostRow(
        setting.label, steps, best["rows"], best["ort"], best["score"], best["search"], best["total"],
        best["worker_ort"],
    )


@dataclass
class MemoryRow:
    d: int
    evaluations: int
    seconds: float
    before_mb: float
    peak_mb: float


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def memory_check(stub: pb_grpc.SISGuardStub) -> MemoryRow | None:
    """Peak resident-set growth of the serving process during one d = 4096 explanation."""
    if not Path("/proc/self/statm").is_file():
        return None
    rng = np.random.default_rng(0)

    def req(x: np.ndarray, k: int) -> pb.ExplainRequest:
        return pb.ExplainRequest(
            pair="wide",
            input=from_numpy(x),
            threshold_relative=RELATIVE_TAU,
            features=pb.PIXEL,
            baseline=pb.ZEROS,
            max_sis=1,
            variants=pb.BOTH,
            mode=pb.BATCHED,
            batch_k=k,
            max_evaluations=BUDGET,
        )

    shape = (1, WIDE_SIDE, WIDE_SIDE)
    await stub.Explain(req(rng.random(shape, dtype=np.float32), 512))  # warm-up: every code path once
    gc.collect()
    before = peak = _rss_mb()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.002):
            peak = max(peak, _rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        resp = await stub.Explain(req(rng.random(shape, dtype=np.float32), WIDE_BATCH_K))
    finally:
        stop.set()
        sampler.join()
    seconds = time.perf_counter() - started
    return MemoryRow(WIDE_SIDE * WIDE_SIDE, resp.dense.evaluations + resp.pruned.evaluations, seconds, before, peak)


# -- printing -----------------------------------------------------------------------------------


def _fmt_ms(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def print_tables(
    rows: list[Row],
    batched: list[BatchedRow],
    n_batched: int,
    args: argparse.Namespace,
    load: tuple[float, float],
    capacity: tuple[float, float],
    concurrency: list[ConcurrencyRow],
    memory: MemoryRow | None,
    hand_off: list[HandOffRow],
    step_cost: list[StepCostRow],
) -> None:
    print(
        f"\n## Explain benchmark ({'quick' if args.quick else 'default'} run): {platform.machine()}, "
        f"{_cpus()} CPUs, onnxruntime {ort.__version__} CPUExecutionProvider, intra_op_threads={args.threads}, "
        f"max_batch_size={MAX_BATCH}, tau = {RELATIVE_TAU} * f_dense(x), zero baseline; best of {args.repeats} "
        f"per input (d = 1024: best of 1); load average {load[0]:.1f} at start, {load[1]:.1f} at end; the two "
        f"cnn32 models side by side on two threads ran {capacity[0]:.2f}× (start) and {capacity[1]:.2f}× (end) "
        "as fast as one after the other\n"
    )
    print(
        "| setting | d | inputs | evaluations / expl. (pair) | sisguard gRPC ms | plain ms | "
        "plain ÷ sisguard (target ≥ 2×) | CPU ms sisguard | CPU ms plain | CPU plain ÷ sisguard (target ≥ 1) | "
        "pure ORT ms, same rows | sisguard ÷ ORT (target ≤ 1.15) | CPU sisguard ÷ ORT | SIS (empty) | no SIS | "
        "same SIS as plain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        g, o, p = sum(r.grpc_ms), sum(r.ort_ms), sum(r.plain_ms)
        gc, oc, pc = sum(r.grpc_cpu_ms), sum(r.ort_cpu_ms), sum(r.plain_cpu_ms)
        print(
            f"| {r.setting} | {r.d} | {r.n} | {statistics.mean(r.evaluations):,.0f} | {_fmt_ms(r.grpc_ms)} | "
            f"{_fmt_ms(r.plain_ms)} | {p / g:.2f}× | {_fmt_ms(r.grpc_cpu_ms)} | {_fmt_ms(r.plain_cpu_ms)} | "
            f"{pc / gc:.2f} | {_fmt_ms(r.ort_ms)} | {g / o:.2f} | {gc / oc:.2f} | {r.sis} ({r.empty}) | "
            f"{r.no_sis} | {r.same}/{r.n} |"
        )
    if hand_off:
        print(
            "\n### The engine in-process, both models at once: a hop through the event loop per step vs the step "
            "scheduler\n"
        )
        print(
            "| setting | inputs | per-step hand-off ms | CPU ms | step scheduler ms | CPU ms | "
            "hand-off ÷ scheduler, wall | same, CPU | same BackSelect orders |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for h in hand_off:
            print(
                f"| {h.setting} | {h.n} | {_fmt_ms(h.per_step_ms)} | {_fmt_ms(h.per_step_cpu_ms)} | "
                f"{_fmt_ms(h.scheduler_ms)} | {_fmt_ms(h.scheduler_cpu_ms)} | "
                f"{sum(h.per_step_ms) / sum(h.scheduler_ms):.2f}× | "
                f"{sum(h.per_step_cpu_ms) / sum(h.scheduler_cpu_ms):.2f}× | {h.same}/{h.n} |"
            )
    if step_cost:
        print(
            "\n### Where a step's CPU time goes: the dense model alone, one search at a time, CPU µs per "
            "BackSelect step (best of the rounds)\n"
        )
        print(
            "| setting | steps | rows | ONNX Runtime (`ModelRuntime.run`) | target probability | search bookkeeping | "
            "Python ÷ ORT, by hand | through the ModelWorker, process CPU | of which ORT | outside ORT |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in step_cost:
            py = c.rows_us + c.score_us + c.search_us
            print(
                f"| {c.setting} | {c.steps} | {c.rows_us:.1f} | {c.ort_us:.1f} | {c.score_us:.1f} | "
                f"{c.search_us:.1f} | {py / c.ort_us:.2f} | {c.worker_total_us:.1f} | {c.worker_ort_us:.1f} | "
                f"{c.worker_total_us - c.worker_ort_us:.1f} |"
            )
    if concurrency:
        n = concurrency[0].explanations
        print(
            f"\n### Concurrent explanations: digits, pixels (d = 64), first SIS, {n} distinct inputs per level; "
            f"the plain loop runs them one after another in the same run\n"
        )
        print(
            "| client concurrency | sisguard explanations / s | plain loop, sequential, explanations / s | "
            "sisguard ÷ plain (target ≥ 4× at 16) | rows per model run (mean) | model runs per explanation (pair) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for c in concurrency:
            print(
                f"| {c.concurrency} | {c.rate:.1f} | {c.plain_rate:.1f} | {c.rate / c.plain_rate:.2f}× | "
                f"{c.rows_per_run:.1f} | {c.runs_per_explanation:.0f} |"
            )
    if memory is not None:
        m = memory
        print(
            f"\n### Memory: a 1×{WIDE_SIDE}×{WIDE_SIDE} linear pair, one feature per pixel (d = {m.d}), "
            f"batched({WIDE_BATCH_K}), first SIS; resident set of the process serving it (server and client)\n"
        )
        print("| d | evaluations (pair) | seconds | RSS before, MB | peak RSS during, MB | growth, MB (target ≤ 200) |")
        print("|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {m.d} | {m.evaluations:,} | {m.seconds:.1f} | {m.before_mb:.0f} | {m.peak_mb:.0f} | "
            f"{m.peak_mb - m.before_mb:.1f} |"
        )
    print(f"\n### batched(k) vs exact: digits, one feature per pixel (d = 64), first SIS, {n_batched} test images\n")
    print(
        "| mode | evaluations / expl. (pair) | saved vs exact | gRPC ms / expl. | IoU with exact, dense | "
        "IoU with exact, pruned | identical SIS, dense | identical SIS, pruned |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    n = max(1, n_batched)
    for b in batched:
        if b.k == 1:
            print(f"| exact | {b.evals / n:,.0f} | | {_fmt_ms(b.ms)} | | | | |")
            continue
        iou_d = statistics.mean(b.iou["dense"]) if b.iou["dense"] else float("nan")
        iou_p = statistics.mean(b.iou["pruned"]) if b.iou["pruned"] else float("nan")
        saved = 1.0 - b.evals / b.evals_exact
        print(
            f"| batched({b.k}) | {b.evals / n:,.0f} | {100 * saved:.0f} % | {_fmt_ms(b.ms)} | {iou_d:.3f} | "
            f"{iou_p:.3f} | {b.identical['dense']}/{len(b.iou['dense'])} | "
            f"{b.identical['pruned']}/{len(b.iou['pruned'])} |"
        )


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# -- main ---------------------------------------------------------------------------------------


def write_config(folder: Path, dirs: dict[str, Path], threads: int) -> Path:
    pairs = [
        {"name": name, "dense": str(d / "dense.onnx"), "pruned": str(d / "pruned.onnx")} for name, d in dirs.items()
    ]
    for p in pairs:
        p.update(output_kind="logits", max_batch_size=MAX_BATCH)
    config = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": None,
        "reflection": False,
        "log_level": "WARNING",
        "runtime": {"providers": ["cpu"], "intra_op_threads": threads, "inter_op_threads": 1},
        "pairs": pairs,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def run(args: argparse.Namespace) -> None:
    quick = args.quick
    load_start = os.getloadavg()[0]
    dirs = {"digits": DIGITS_DIR, "cnn32": cnn_pair(), "small32": small_pair(), "wide": wide_pair()}
    manifest = json.loads((dirs["cnn32"] / "manifest.json").read_text())
    small_manifest = json.loads((dirs["small32"] / "manifest.json").read_text())
    n_digits = 8 if quick else 32
    n_cnn, n_small256, n_small1024 = (1, 1, 1) if quick else (4, 4, 2)
    digits = digits_inputs(n_digits)
    settings = [
        Setting("digits, pixels, first SIS", "digits", pb.PIXEL, (1, 1), 1, digits),
        Setting("digits, pixels, full collection", "digits", pb.PIXEL, (1, 1), 64, digits),
        Setting("cnn32, 4×4 patches, first SIS", "cnn32", pb.PATCH, (4, 4), 1, cnn_inputs(n_cnn)),
        Setting("small32, 2×2 patches, first SIS", "small32", pb.PATCH, (2, 2), 1, cnn_inputs(n_small256)),
        Setting("small32, pixels, first SIS", "small32", pb.PIXEL, (1, 1), 1, cnn_inputs(n_small1024), repeats=1),
    ]
    batched_inputs = digits_inputs(min(32, args.batched_images) if quick else args.batched_images)
    concurrent = Setting("digits", "digits", pb.PIXEL, (1, 1), 1, digits_inputs(16 if quick else 64))
    sessions = {name: PairSessions.open(name, dirs[name], args.threads) for name in ("digits", "cnn32", "small32")}
    capacity_start = parallel_capacity(sessions["cnn32"])
    with tempfile.TemporaryDirectory() as tmp:
        app = App(load_settings(write_config(Path(tmp), dirs, args.threads)))
        recorder = BatchRecorder(app.dataplane.observer)
        app.dataplane.observer = recorder  # type: ignore[assignment]  # set before start: the batchers get it
        port = await app.start()
        try:
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)]
            ) as channel:
                stub = pb_grpc.SISGuardStub(channel)
                log("[bench] memory: one d = 4096 explanation ...")
                memory = await memory_check(stub)
                rows = []
                for s in settings:
                    log(f"[bench] {s.label}: {len(s.inputs)} inputs ...")
                    rows.append(await time_setting(stub, recorder, sessions[s.pair], s, args.repeats))
                log(f"[bench] concurrency 1/4/16 on {len(concurrent.inputs)} digits inputs ...")
                concurrency = await concurrency_table(stub, recorder, sessions["digits"], concurrent, (1, 4, 16))
                log("[bench] in-process: per-step hand-off vs step scheduler ...")
                hand_off = [
                    await hand_off_table(sessions[s.pair], s, args.repeats) for s in (settings[0], settings[2])
                ]
                log("[bench] in-process: where a step's CPU time goes ...")
                step_cost = [await step_costs(sessions["digits"], settings[0], args.repeats)]
                log(f"[bench] batched(k) table on {len(batched_inputs)} digits test images ...")
                bsetting = Setting("digits", "digits", pb.PIXEL, (1, 1), 1, batched_inputs)
                batched = await batched_table(stub, bsetting, (2, 4, 8))
        finally:
            await app.stop(grace=0.5)
    acc = {v: round(manifest["accuracy"][v]["onnx"], 3) for v in ("dense", "pruned")}
    small_acc = {v: round(small_manifest["accuracy"][v]["onnx"], 3) for v in ("dense", "pruned")}
    capacity = (capacity_start, parallel_capacity(sessions["cnn32"]))
    load = (load_start, os.getloadavg()[0])
    print_tables(rows, batched, len(batched_inputs), args, load, capacity, concurrency, memory, hand_off, step_cost)
    print(
        f"\ncnn32 pair: resnet_cifar(width={CNN_RECIPE['width']}) on synthetic32 "
        f"({CNN_RECIPE['n']} samples, {CNN_RECIPE['train_epochs']} epochs), FT-pruned to ratio "
        f"{manifest['ratio']:.2f} in {CNN_RECIPE['cycles']} cycles; ONNX test accuracy dense {acc['dense']}, "
        f"pruned {acc['pruned']}; FLOPs dense {manifest['flops']['dense']:,}, pruned {manifest['flops']['pruned']:,}"
    )
    print(
        f"small32 pair: two strided 3×3 convolutions (width {SMALL_RECIPE['width']}), max-pool, linear, on "
        f"synthetic32; WT-pruned to ratio {small_manifest['ratio']:.2f}; ONNX test accuracy dense "
        f"{small_acc['dense']}, pruned {small_acc['pruned']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs: a short run")
    parser.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime intra-op threads per model, server and replay (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per input (default 3, --quick 2)")
    parser.add_argument(
        "--batched-images", type=int, default=450, help="digits test images in the batched(k) table (default: all 450)"
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
