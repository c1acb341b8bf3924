"""Audit benchmark: ``sisguard audit`` on the bundled digits pair's test set, and SIS clustering.

Run from the repository root::

    python bench/bench_audit.py              # the whole digits test set (450 inputs): about 5 min on 2 cores
    python bench/bench_audit.py --limit 96   # a shorter run
    python bench/bench_audit.py --rows-only --config my.yaml --pair mypair   # rows/s of your models

In one run, side by side on the same inputs (the sklearn digits test split the bundled pair was
trained against, 450 inputs of ``[1, 8, 8]``, pixel features: d = 64, exact BackSelect, dense +
pruned + control):

* model rows per second of each model alone (ONNX Runtime, one intra-op thread, full batches of
  the pair's ``max_batch_size``, the best of six interleaved windows), the figure the cost model in
  ``docs/scaling.md`` starts from (``--rows-only --config`` measures it for any pair);
* the audit on a local process pool with 1 worker and with 2 workers (target ≥ 1.7× inputs/s),
  and on a local Ray cluster started here (``ray start --head --num-cpus=2``, 2 actors) against
  the 2-worker pool (target: within 15 %). Inputs per second are end to end (worker start-up
  included) and per worker (explain time only, from the shards' metadata); total model rows;
  the Ray audit's Parquet is compared with the local one (``same content``);
* clustering (``sisguard audit-report``'s DBSCAN) of 10,000 SIS: the audit's real first SIS,
  resampled with one feature added or dropped at random, over 10 classes and over a single class
  (the worst case: one 10,000 × 10,000 distance problem); time and peak memory (tracemalloc).

The machine may be shared: the header prints the load average, and ratios are measured back to
back in one run so that load hits both sides alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from sisguard.audit.clusters import ClusterOptions, cluster_sis
from sisguard.audit.options import AuditOptions
from sisguard.audit.runner import run_audit
from sisguard.audit.spec import build_spec
from sisguard.audit.store import AuditStore


def digits_test_set(path: Path, limit: int | None) -> int:
    from sisguard.prune.data import load_digits

    data = load_digits()
    x, y = data.x_test, data.y_test
    if limit is not None:
        x, y = x[:limit], y[:limit]
    np.savez(path, x=x, y=y)
    return len(x)


def model_rows_per_second(
    config: Path | None = None, pair: str | None = None, windows: int = 6, seconds: float = 0.4
) -> dict[str, float]:
    """Rows per second of each model of the pair on full batches, one intra-op thread: the best of
    ``windows`` short windows per model, the models interleaved (a shared machine's load varies)."""
    import onnxruntime as ort

    spec = build_spec(AuditOptions(dataset=Path("unused.npz"), out=Path("unused"), config=config, pair=pair))
    batch = np.random.default_rng(0).random((spec.chunk_size, *spec.input_shape)).astype(spec.input_dtype)
    sessions = {}
    for model in spec.models:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        sessions[model.variant] = ort.InferenceSession(
            model.data, sess_options=options, providers=["CPUExecutionProvider"]
        )
    feed = {spec.input_name: batch}
    best = dict.fromkeys(sessions, 0.0)
    for _ in range(windows):
        for variant, session in sessions.items():
            session.run(None, feed)
            n, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                session.run(None, feed)
                n += 1
            best[variant] = max(best[variant], n * len(batch) / (time.perf_counter() - started))
    return best


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ray(num_cpus: int) -> tuple[subprocess.Popen[bytes], str, str]:
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    proc = subprocess.Popen(
        [
            shutil.which("ray") or "ray",
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the local Ray cluster did not start") from None
            time.sleep(0.2)
    return proc, f"127.0.0.1:{port}", temp


def audit(dataset: Path, out: Path, **kw: object) -> dict:  # type: ignore[type-arg]
    options = AuditOptions(dataset=dataset, out=out, chunk_size=8, progress=False, **kw)  # type: ignore[arg-type]
    started = time.perf_counter()
    summary = run_audit(options)
    wall = time.perf_counter() - started
    metas = AuditStore(out).shard_meta()
    busy = sum(m["seconds"] for m in metas)
    n = summary["audited_inputs"]
    return {
        "wall": wall,
        "inputs": n,
        "per_s": n / wall,
        "per_worker_s": n / busy if busy else float("nan"),
        "rows": summary["total_model_rows"],
        "workers": summary["run"]["workers"],
    }


def synthetic_sis(columns: dict, n: int, classes: int, rng: np.random.Generator, d: int) -> dict:  # type: ignore[type-arg]
    """``n`` first SIS resampled from the audit's real ones, each with one feature added or dropped."""
    real = [s[0] for s, st in zip(columns["dense_sis"], columns["dense_status"], strict=True) if st == "found" and s]
    ids, targets, sis = [], [], []
    for i in range(n):
        base = set(real[int(rng.integers(len(real)))])
        f = int(rng.integers(d))
        base = base ^ {f} if len(base) > 1 or f not in base else base
        ids.append(i)
        targets.append(i % classes)
        sis.append([sorted(base)])
    return {"id": ids, "target": targets, "dense_status": ["found"] * n, "dense_sis": sis}


def bench_clusters(columns: dict, d: int, n: int) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    cluster_sis(synthetic_sis(columns, 20, 2, rng, d), ("dense",), d, ClusterOptions())  # imports, warm-up
    for classes in (10, 1):
        cols = synthetic_sis(columns, n, classes, rng, d)
        tracemalloc.start()
        started = time.perf_counter()
        result = cluster_sis(cols, ("dense",), d, ClusterOptions())
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"  {n} SIS in {classes:2d} class(es): {seconds:6.2f} s, peak {peak / 2**20:7.1f} MiB, "
            f"{len(result.clusters)} clusters"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="audit only the first N test inputs (default: all 450)")
    parser.add_argument("--cluster-sis", type=int, default=10_000, help="SIS to cluster (default 10000)")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray cluster (local pool only)")
    parser.add_argument("--config", type=Path, help="rows per second of this config's pair instead (with --rows-only)")
    parser.add_argument("--pair", help="the pair of --config (default: its first)")
    parser.add_argument("--rows-only", action="store_true", help="only the model rows per second, then stop")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best of each is shown")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("model rows per second (one intra-op thread, full batches of the pair's max_batch_size; best window):")
    for variant, rate in model_rows_per_second(args.config, args.pair).items():
        print(f"  {variant:8s} {rate:10.0f}")
    if args.rows_only:
        return

    with tempfile.TemporaryDirectory(prefix="bench_audit") as tmp:
        root = Path(tmp)
        dataset = root / "digits_test.npz"
        n = digits_test_set(dataset, args.limit)
        print(f"\naudit of {n} digits test inputs (dense + pruned + control, d = 64, exact):")
        plan: list[tuple[str, dict]] = [("local x1", {"workers": 1}), ("local x2", {"workers": 2})]  # type: ignore[type-arg]
        ray_proc = None
        if not args.skip_ray:
            ray_proc, address, temp = start_ray(2)
            plan.append(("ray x2", {"ray_address": address}))
        runs: dict[str, dict] = {}  # type: ignore[type-arg]
        try:
            for rep in range(args.repeats):  # interleaved: load changes hit every setting alike
                for name, kw in plan:
                    r = audit(dataset, root / f"{name.replace(' ', '_')}_{rep}", **kw)
                    if name not in runs or r["per_s"] > runs[name]["per_s"]:
                        runs[name] = {**r, "rep": rep}
        finally:
            if ray_proc is not None:
                ray_proc.terminate()
                ray_proc.wait(timeout=60)
                shutil.rmtree(temp, ignore_errors=True)
        same = None
        if "ray x2" in runs:
            same = AuditStore(root / "ray_x2_0").read().equals(AuditStore(root / "local_x1_0").read())
        print(f"  best of {args.repeats} interleaved runs each")
        print(f"  {'run':9s} {'workers':>7s} {'wall s':>8s} {'inputs/s':>9s} {'per worker/s':>13s} {'model rows':>11s}")
        for name, r in runs.items():
            print(
                f"  {name:9s} {r['workers']:7d} {r['wall']:8.1f} {r['per_s']:9.2f} {r['per_worker_s']:13.2f} "
                f"{r['rows']:11d}"
            )
        one, two = runs["local x1"], runs["local x2"]
        print(f"  local 2 workers ÷ 1 worker: {two['per_s'] / one['per_s']:.2f}x inputs/s (target >= 1.7)")
        if "ray x2" in runs:
            ray_run = runs["ray x2"]
            print(
                f"  ray ÷ local pool (2 workers): {ray_run['per_s'] / two['per_s']:.2f}x inputs/s end to end, "
                f"{ray_run['per_worker_s'] / two['per_worker_s']:.2f}x per worker (target within 15 %); "
                f"same content: {same}"
            )
        rows_per_input = one["rows"] / one["inputs"]
        print(f"  model rows per input (3 models): {rows_per_input:.0f}")

        columns = AuditStore(root / "local_x1_0").read().to_pydict()
        print(f"\nclustering {args.cluster_sis} SIS (DBSCAN, Jaccard, eps 0.3, min_samples 3):")
        bench_clusters(columns, 64, args.cluster_sis)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
