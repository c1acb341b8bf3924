"""Run an audit: check everything that can be checked, plan the chunks left, drive an executor,
write each returned chunk as a shard, and summarise the whole audit folder at the end."""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from sisguard.audit.dataset import Dataset, load_dataset
from sisguard.audit.errors import AuditError
from sisguard.audit.executors import Executor, WorkerLost, check_reachable, make_executor
from sisguard.audit.options import AuditOptions
from sisguard.audit.schema import MEASURES
from sisguard.audit.spec import WorkerSpec, build_spec
from sisguard.audit.store import AuditStore, _write_atomic
from sisguard.audit.worker import Chunk


@dataclass(frozen=True)
class ShardEvent:
    """One shard written: which chunk, by which worker, and how far the audit is."""

    index: int
    worker: str
    inputs_done: int
    inputs_total: int
    rows: int


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, done: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.done, self.stream = total, done, stream
        self.enabled = enabled and stream.isatty()
        self.started = time.monotonic()
        self.first = done

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = (done - self.first) / max(time.monotonic() - self.started, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} inputs, {rate:.1f}/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _identity(spec: WorkerSpec, fingerprint: str, n: int, options: AuditOptions) -> dict[str, Any]:
    return {
        "dataset": {"path": str(options.dataset.resolve()), "sha256": fingerprint, "inputs": n},
        "chunk_size": options.chunk_size,
        "variants": list(spec.variants),
        "explain": spec.fingerprint(),
    }


def run_audit(
    options: AuditOptions,
    *,
    on_shard: Callable[[ShardEvent, Executor], None] | None = None,
    stream: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Audit ``options.dataset`` into ``options.out``; returns (and writes) the summary.

    ``on_shard`` is called after each shard is in place with the executor that produced it. An
    interrupted audit (Ctrl-C, a crash) keeps every shard written; running it again continues.
    """
    spec = build_spec(options)
    data = load_dataset(
        options.dataset,
        spec.input_shape,
        spec.input_dtype,
        image_scale=spec.image_scale,
        image_invert=spec.image_invert,
        limit=options.limit,
    )
    if data.labels is not None and ((data.labels < 0) | (data.labels >= spec.num_outputs)).any():
        bad = int(data.labels[(data.labels < 0) | (data.labels >= spec.num_outputs)][0])
        raise AuditError(
            f"dataset {options.dataset}: label {bad}: labels must be classes 0 to {spec.num_outputs - 1} "
            f"(pair {spec.pair} has {spec.num_outputs} outputs)"
        )
    if options.ray_address is not None:
        check_reachable(options.ray_address)
    store = AuditStore(options.out)
    store.lock()
    try:
        return _run(options, spec, data, store, on_shard, stream)
    finally:
        store.unlock()


def _run(
    options: AuditOptions,
    spec: WorkerSpec,
    data: Dataset,
    store: AuditStore,
    on_shard: Callable[[ShardEvent, Executor], None] | None,
    stream: TextIO,
) -> dict[str, Any]:
    resumed = store.open(_identity(spec, data.fingerprint, len(data), options), spec.groups)
    n, size = len(data), options.chunk_size
    chunks = math.ceil(n / size)
    done = store.done()
    todo = [k for k in range(chunks) if k not in done]
    inputs_done = sum(min(size, n - k * size) for k in done if k < chunks)
    before = inputs_done
    progress = Progress(n, inputs_done, stream, options.progress)
    started = time.monotonic()
    written, rows_run, workers, backend, lost = 0, 0, 0, "none", 0
    stopped_by_budget = False
    if todo:
        executor = make_executor(
            spec, workers=options.workers, ray_address=options.ray_address, num_gpus=options.num_gpus
        )
        workers, backend = executor.workers, "ray" if options.ray_address else "local"

        def chunk(k: int) -> Chunk:
            sl = slice(k * size, min(n, (k + 1) * size))
            return Chunk(
                index=k,
                ids=np.arange(sl.start, sl.stop, dtype=np.int64),
                x=data.x[sl],
                labels=None if data.labels is None else data.labels[sl],
                sources=data.sources[sl],
            )

        queue = list(reversed(todo))
        retries: Counter[int] = Counter()
        try:
            progress.update(inputs_done)
            while queue or executor.pending():
                while queue and executor.pending() < 2 * executor.workers and not stopped_by_budget:
                    executor.submit(chunk(queue.pop()))
                if not executor.pending():
                    break
                item, result = executor.next_result()
                if isinstance(result, WorkerLost):
                    lost += 1
                    retries[item.index] += 1
                    if retries[item.index] > options.retries:
                        raise AuditError(
                            f"chunk {item.index} lost its worker {retries[item.index]} times ({result.reason}); "
                            "the shards written so far are kept, run the same command again to resume"
                        )
                    executor.submit(item)
                    continue
                count = store.write(result, spec.variants)
                written += 1
                inputs_done += count
                rows_run += sum(result.rows.values())
                progress.update(inputs_done)
                if on_shard is not None:
                    on_shard(ShardEvent(item.index, result.worker, inputs_done, n, rows_run), executor)
                if options.max_total_evaluations is not None and rows_run >= options.max_total_evaluations:
                    stopped_by_budget = True
        finally:
            progress.close()
            executor.close()
    seconds = time.monotonic() - started
    summary = summarise(store)
    summary["run"] = {
        "resumed": resumed,
        "backend": backend,
        "workers": workers,
        "shards_written": written,
        "inputs_explained": inputs_done - before,
        "seconds": seconds,
        "model_rows": rows_run,
        "stopped_by_budget": stopped_by_budget,
        "chunks_rerun_after_worker_loss": lost,
        "chunks_left": chunks - len(store.done()),
    }
    summary["run"]["inputs_per_second"] = (inputs_done - before) / seconds if written and seconds > 0 else None
    _write_atomic(options.out / "summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return summary


def _mean(values: list[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(xs)) if xs else None


def summarise(store: AuditStore) -> dict[str, Any]:
    """Counts and means over every shard of an audit folder."""
    manifest = store.manifest() or {}
    table = store.read()
    cols = table.to_pydict()
    variants = manifest.get("variants", ["dense", "pruned"])
    labels = cols["label"]
    rows_by_model: Counter[str] = Counter()
    for meta in store.shard_meta():
        rows_by_model.update(meta.get("rows", {}))
    out: dict[str, Any] = {
        "pair": manifest.get("explain", {}).get("pair"),
        "dataset_inputs": manifest.get("dataset", {}).get("inputs"),
        "audited_inputs": table.num_rows,
        "model_rows": dict(rows_by_model),
        "total_model_rows": int(sum(rows_by_model.values())),
        "models": {},
        "compared": {},
    }
    for v in variants:
        status = Counter(cols[f"{v}_status"])
        first = [len(s[0]) for s, st in zip(cols[f"{v}_sis"], cols[f"{v}_status"], strict=True) if st == "found" and s]
        model: dict[str, Any] = {"status": dict(status), "mean_first_sis_size": _mean(first)}
        if any(lbl is not None for lbl in labels):
            pairs = [(t, lbl) for t, lbl in zip(cols[f"{v}_top1"], labels, strict=True) if lbl is not None]
            model["accuracy"] = float(np.mean([t == lbl for t, lbl in pairs]))
        out["models"][v] = model
    for o in (v for v in variants if v != "dense"):
        divergent = [d for d in cols[f"{o}_agree_divergent"] if d is not None]
        reasons: Counter[str] = Counter(r for rs in cols[f"{o}_agree_reasons"] if rs for r in rs)
        out["compared"][o] = {
            "divergent_share": float(np.mean(divergent)) if divergent else None,
            "reasons": dict(reasons),
            "mean_iou_first": _mean(cols[f"{o}_agree_iou_first"]),
            "measures": {m: _mean(cols[f"{o}_{m}"]) for m in MEASURES},
        }
    if "control" in out["compared"] and "pruned" in out["compared"]:
        p, c = out["compared"]["pruned"]["measures"], out["compared"]["control"]["measures"]
        out["excess_over_control"] = {m: None if p[m] is None or c[m] is None else p[m] - c[m] for m in MEASURES}
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines for a terminal."""
    run = summary.get("run", {})
    lines = [
        f"audit of pair {summary['pair']}: {summary['audited_inputs']} of {summary['dataset_inputs']} inputs in "
        f"the folder ({run.get('inputs_explained', 0)} explained now by {run.get('workers', 0)} "
        f"{run.get('backend', '')} workers in {run.get('seconds', 0):.1f} s)",
        "model rows: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary["model_rows"].items()))
        + f" (total {summary['total_model_rows']})",
    ]
    for v, m in summary["models"].items():
        acc = f", accuracy {m['accuracy']:.3f}" if "accuracy" in m else ""
        size = m["mean_first_sis_size"]
        lines.append(
            f"  {v:8s} status {dict(m['status'])}, "
            f"mean first SIS {'-' if size is None else f'{size:.1f}'} features{acc}"
        )
    for o, c in summary["compared"].items():
        share = c["divergent_share"]
        iou = c["mean_iou_first"]
        cross = c["measures"]["cross_insufficiency"]
        lines.append(
            f"  dense vs {o}: divergent {'-' if share is None else f'{share:.1%}'}, mean first-SIS IoU "
            f"{'-' if iou is None else f'{iou:.3f}'}, cross-insufficient {'-' if cross is None else f'{cross:.1%}'}"
        )
    if run.get("stopped_by_budget"):
        lines.append(f"stopped at the evaluation budget; {run['chunks_left']} chunks left: run again to continue")
    return "\n".join(lines)
