"""The audit on a local Ray cluster started here (one for the module: Ray starts slowly on 2 cores)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sisguard.audit.executors import RayExecutor  # noqa: E402
from sisguard.audit.runner import ShardEvent, run_audit  # noqa: E402
from sisguard.audit.store import AuditStore  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """``ray start --head --block`` with 2 CPUs; its process ends the cluster when terminated."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    proc = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _accepts(port):  # the GCS port opening is the event we wait for
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the local Ray cluster did not start")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_audit_equals_the_local_one(reference, digits_npz: Path, tmp_path: Path, make_options, ray_address) -> None:  # type: ignore[no-untyped-def]
    summary = run_audit(make_options(digits_npz, tmp_path / "a", ray_address=ray_address))
    assert summary["run"]["backend"] == "ray" and summary["run"]["workers"] == 2
    assert AuditStore(tmp_path / "a").read().equals(reference)


def test_killed_actor_loses_and_duplicates_nothing(  # type: ignore[no-untyped-def]
    reference, digits_npz: Path, tmp_path: Path, make_options, ray_address
) -> None:
    killed: list[object] = []

    def kill_once(event: ShardEvent, executor: object) -> None:
        # an actor with a chunk still to finish: losing it must cost a rerun (one input per chunk keeps
        # several chunks in flight at every shard)
        if not killed and isinstance(executor, RayExecutor) and (actor := executor.busiest_actor()) is not None:
            ray.kill(actor, no_restart=True)
            killed.append(actor)

    options = make_options(digits_npz, tmp_path / "a", ray_address=ray_address, chunk_size=1)
    summary = run_audit(options, on_shard=kill_once)
    assert killed and summary["run"]["chunks_rerun_after_worker_loss"] >= 1
    assert AuditStore(tmp_path / "a").read().equals(reference)
