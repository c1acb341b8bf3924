"""Bounded load and soak test for sisguard, on loopback only.

Many concurrent clients (one gRPC channel each) mix Predict, Explain and ExplainStream for a
fixed time (and at most a fixed number of requests). Reports requests served, errors by code,
latency quantiles per RPC and the server's resident memory (RSS) after warm-up and at the end.
Only RESOURCE_EXHAUSTED (overload: queue full, too many explanations at once) is an expected
error; anything else makes the exit status 1.

By default it starts ``sisguard serve`` itself (the bundled digits pair, or ``--config``) on a
free loopback port, so that it can read the server's RSS from /proc::

    python bench/load.py                                # 60 s, 32 clients, bundled digits pair
    python bench/load.py --duration 600 --clients 64    # the documented 10-minute soak
    python bench/load.py --config my.yaml --duration 20 --json out.json
    python bench/load.py --address 127.0.0.1:50051 --pid 1234   # an already running server

Numbers from one machine; compare runs made side by side, never across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc

EXPECTED = {"OK", "RESOURCE_EXHAUSTED"}
OPS = ("Predict", "Explain", "ExplainStream")
SERVE = [sys.executable, "-c", "import sys; from sisguard.client.cli import main; sys.exit(main())", "serve"]


# -- the server under test ----------------------------------------------------------------------


class Spawned:
    """``sisguard serve`` on a free loopback port."""

    def __init__(self, config: Path | None, log: Path | None) -> None:
        cmd = [*SERVE, "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING"]
        if config:
            cmd += ["--config", str(config)]
        # INFO for the line naming the port, then quiet: the app logs one line when it is bound.
        cmd[cmd.index("WARNING")] = "INFO"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port: int | None = None
        self._bound = threading.Event()
        self._log = log.open("w") if log else None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if self._log:
                self._log.write(line)
            m = re.search(r"serving on [^\s]+:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._bound.set()
        self._bound.set()

    def wait(self, timeout: float = 180.0) -> str:
        if not self._bound.wait(timeout) or self.port is None:
            raise SystemExit(f"load: the server did not start (exit status {self.proc.poll()})")
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def require_loopback(address: str) -> None:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"load: {address} is not a loopback address; this tool only loads local servers")


# -- the clients --------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    messages: dict[str, str] = field(default_factory=dict)  # first message per RPC and error code
    stream_events: int = 0
    started: int = 0


def tensor(x: np.ndarray) -> pb.Tensor:
    return pb.Tensor(dtype=pb.FLOAT32, shape=list(x.shape), data=np.ascontiguousarray(x, "<f4").tobytes())


async def client(
    address: str,
    pair: str,
    inputs: np.ndarray,
    mix: list[tuple[str, float]],
    rows: int,
    stop_at: float,
    budget: list[int],
    stats: Stats,
    seed: int,
    token: str | None,
) -> None:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    ops, weights = zip(*mix, strict=True)
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.SISGuardStub(channel)
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            stats.started += 1
            op = rng.choices(ops, weights)[0]
            # Small jitter: no two requests are identical, so the explanation cache does not help.
            pick = nrng.integers(0, len(inputs), size=rows if op == "Predict" else 1)
            x = inputs[pick] + nrng.normal(0, 1e-3, size=inputs[pick].shape).astype(np.float32)
            remaining = max(stop_at - time.monotonic(), 0) + 60.0
            start = time.monotonic()
            try:
                if op == "Predict":
                    await stub.Predict(
                        pb.PredictRequest(pair=pair, inputs=tensor(x)), timeout=remaining, metadata=metadata
                    )
                elif op == "Explain":
                    await stub.Explain(
                        pb.ExplainRequest(pair=pair, input=tensor(x[0])), timeout=remaining, metadata=metadata
                    )
                else:
                    call = stub.ExplainStream(
                        pb.ExplainRequest(pair=pair, input=tensor(x[0])), timeout=remaining, metadata=metadata
                    )
                    async for _ in call:
                        stats.stream_events += 1
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
                stats.messages.setdefault(f"{op} {code}", exc.details() or "")
            stats.latencies[op].append(time.monotonic() - start)
            stats.codes[op][code] += 1
            if code == "RESOURCE_EXHAUSTED":
                await asyncio.sleep(0.01 + rng.random() * 0.02)  # back off a little, as a client should


async def fetch_pair(address: str, pair: str | None, token: str | None) -> pb.PairInfo:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.insecure_channel(address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            raise SystemExit(f"load: server at {address} is not SERVING")
        listed = await pb_grpc.SISGuardStub(channel).ListModels(pb.ListModelsRequest(), timeout=30, metadata=metadata)
    for p in listed.pairs:
        if pair is None or p.name == pair:
            if p.input_dtype != pb.FLOAT32:
                raise SystemExit(
                    f"load: pair {p.name} takes {pb.DataType.Name(p.input_dtype)}; only FLOAT32 is supported"
                )
            return p
    raise SystemExit(f"load: no pair {pair!r} on the server")


def load_inputs(samples: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    if samples and samples.exists():
        x = np.load(samples)["x"].astype(np.float32)
        if tuple(x.shape[1:]) == shape:
            return x
    return np.random.default_rng(0).random((256, *shape), dtype=np.float32)


def default_samples(config: Path | None, pair: str) -> Path | None:
    from sisguard.server.config import load_settings

    with contextlib.suppress(Exception):
        for p in load_settings(config).pairs:
            if p.name == pair:
                return p.dense.parent / "samples.npz"
    return None


# -- report -------------------------------------------------------------------------------------


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values) * 1000.0
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def report(stats: Stats, elapsed: float, rss: dict[str, int | None], args: argparse.Namespace) -> dict[str, object]:
    per_op = {}
    for op in OPS:
        codes = dict(stats.codes.get(op, {}))
        n = sum(codes.values())
        per_op[op] = {
            "requests": n,
            "per_second": n / elapsed if elapsed else 0.0,
            "codes": codes,
            **quantiles(stats.latencies.get(op, [])),
        }
    unexpected = {f"{op} {c}": k for op in OPS for c, k in stats.codes.get(op, {}).items() if c not in EXPECTED}
    start, end = rss.get("after_warmup"), rss.get("end")
    growth = (end - start) / start if start and end else None
    return {
        "duration_s": elapsed,
        "clients": args.clients,
        "mix": args.mix,
        "rows_per_predict": args.rows,
        "ops": per_op,
        "served": sum(sum(c.values()) for c in stats.codes.values()),
        "ok": sum(c.get("OK", 0) for c in stats.codes.values()),
        "resource_exhausted": sum(c.get("RESOURCE_EXHAUSTED", 0) for c in stats.codes.values()),
        "unexpected": unexpected,
        "first_messages": stats.messages,
        "stream_events": stats.stream_events,
        "rss_bytes": rss,
        "rss_growth": growth,
    }


def print_report(r: dict[str, object]) -> None:
    print(
        f"\nsisguard load: {r['clients']} clients, {r['duration_s']:.0f} s, mix {r['mix']}, "
        f"{r['rows_per_predict']} rows per Predict"
    )
    print(f"{'rpc':<14}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  codes")
    for op, s in r["ops"].items():  # type: ignore[attr-defined]
        if not s["requests"]:
            continue
        print(
            f"{op:<14}{s['requests']:>10}{s['per_second']:>9.1f}{s.get('p50_ms', 0):>9.1f}{s.get('p90_ms', 0):>9.1f}"
            f"{s.get('p99_ms', 0):>9.1f}{s.get('max_ms', 0):>9.1f}  {s['codes']}"
        )
    rss = r["rss_bytes"]
    mib = {k: (f"{v / 2**20:.1f} MiB" if v else "n/a") for k, v in rss.items()}  # type: ignore[attr-defined]
    growth = r["rss_growth"]
    print(
        f"served {r['served']}, OK {r['ok']}, RESOURCE_EXHAUSTED {r['resource_exhausted']}, "
        f"unexpected {r['unexpected'] or 'none'}; "
        f"stream events {r['stream_events']}"
    )
    print(
        f"server RSS: start {mib['start']}, after warm-up {mib['after_warmup']}, end {mib['end']}, max {mib['max']}"
        + (f"; growth after warm-up {growth:+.1%}" if growth is not None else "")
    )
    for k, msg in r["first_messages"].items():  # type: ignore[attr-defined]
        print(f"  first {k}: {msg}")


# -- main ---------------------------------------------------------------------------------------


def parse_mix(text: str) -> list[tuple[str, float]]:
    names = {"predict": "Predict", "explain": "Explain", "stream": "ExplainStream", "explainstream": "ExplainStream"}
    mix = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip().lower() not in names:
            raise argparse.ArgumentTypeError(f"unknown rpc {name!r} in --mix (use predict, explain, stream)")
        mix.append((names[name.strip().lower()], float(weight or 1)))
    return mix


async def run(args: argparse.Namespace) -> int:
    spawned = None
    if args.address:
        require_loopback(args.address)
        address, pid = args.address, args.pid
    else:
        spawned = Spawned(args.config, args.server_log)
        address = await asyncio.to_thread(spawned.wait)
        pid = spawned.proc.pid
    try:
        info = await fetch_pair(address, args.pair, args.token)
        samples = args.samples or (None if args.address else default_samples(args.config, info.name))
        inputs = load_inputs(samples, tuple(info.input_shape))
        rss: dict[str, int | None] = {
            "start": rss_bytes(pid) if pid else None,
            "after_warmup": None,
            "end": None,
            "max": None,
        }
        warmup = min(args.warmup, args.duration / 4)
        began = time.monotonic()
        stop_at = began + args.duration
        stats = Stats()
        budget = [args.max_requests]
        mix = parse_mix(args.mix)

        async def sample_rss() -> None:
            await asyncio.sleep(warmup)
            rss["after_warmup"] = rss_bytes(pid) if pid else None
            while time.monotonic() < stop_at:
                value = rss_bytes(pid) if pid else None
                if value:
                    rss["max"] = max(rss["max"] or 0, value)
                await asyncio.sleep(2.0)

        sampler = asyncio.create_task(sample_rss())
        print(
            f"load: {args.clients} clients against {address} (pair {info.name}) for {args.duration:.0f} s ...",
            flush=True,
        )
        await asyncio.gather(
            *(
                client(address, info.name, inputs, mix, args.rows, stop_at, budget, stats, args.seed + i, args.token)
                for i in range(args.clients)
            )
        )
        elapsed = time.monotonic() - began
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        rss["end"] = rss_bytes(pid) if pid else None
        if rss["end"]:
            rss["max"] = max(rss["max"] or 0, rss["end"])
        result = report(stats, elapsed, rss, args)
    finally:
        exit_status = spawned.stop() if spawned else None
    result["server_exit_status"] = exit_status
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if result["unexpected"] or (exit_status not in (None, 0)) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, help="config for the spawned server (default: the bundled digits pair)")
    p.add_argument("--address", help="load an already running server at this loopback HOST:PORT instead")
    p.add_argument("--pid", type=int, help="with --address: the server's pid, to report its RSS")
    p.add_argument("--pair", help="pair to load (default: the first one)")
    p.add_argument("--token", help="bearer token, when the server requires one")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--max-requests", type=int, default=10**9, help="stop after this many requests in all")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients, one channel each (default 32)")
    p.add_argument("--mix", default="predict=0.7,explain=0.2,stream=0.1", help="weights of the RPCs")
    p.add_argument("--rows", type=int, default=4, help="rows per Predict (default 4)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds before the RSS baseline (at most duration/4)")
    p.add_argument("--samples", type=Path, help=".npz with inputs 'x' (default: samples.npz next to the pair's models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the report here as JSON")
    p.add_argument("--server-log", type=Path, help="write the spawned server's log here")
    args = p.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.rows < 1:
        p.error("--clients, --duration and --rows must be positive")
    parse_mix(args.mix)
    return asyncio.run(run(args))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
