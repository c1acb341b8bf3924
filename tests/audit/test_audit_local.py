"""The audit on the local process pool: content, resumption, a killed worker, bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sisguard.audit.errors import AuditError
from sisguard.audit.executors import LocalExecutor
from sisguard.audit.runner import ShardEvent, run_audit
from sisguard.audit.schema import AGREEMENT_FIELDS, audit_schema
from sisguard.audit.store import AuditStore
from sisguard.audit.worker import agreement_field_names
from sisguard.sis import jaccard


def test_schema_covers_every_agreement_field() -> None:
    assert set(AGREEMENT_FIELDS) == set(agreement_field_names())
    names = audit_schema(("dense", "pruned", "control")).names
    assert len(names) == len(set(names))


def test_reference_holds_each_input_once_with_consistent_measures(reference, digits_npz: Path) -> None:  # type: ignore[no-untyped-def]
    cols = reference.to_pydict()
    assert cols["id"] == list(range(6))
    with np.load(digits_npz) as f:
        assert cols["label"] == f["y"].tolist()
    for i in range(6):
        assert cols["target"][i] == cols["dense_top1"][i]
        for other in ("pruned", "control"):
            d, o = cols["dense_sis"][i], cols[f"{other}_sis"][i]
            if cols["dense_status"][i] == "found" and cols[f"{other}_status"][i] == "found":
                assert cols[f"{other}_agree_iou_first"][i] == pytest.approx(jaccard(d[0], o[0]))
                assert cols[f"{other}_sis_iou_distance"][i] == pytest.approx(1 - jaccard(d[0], o[0]))
            if cols["dense_status"][i] == "found":
                # one BackSelect round per SIS, over every feature in the first round
                assert len(cols["dense_trace_order"][i]) == len(d)
                assert sorted(cols["dense_trace_order"][i][0]) == list(range(64))
                assert cols["dense_sis_scores"][i][0] >= cols["threshold"][i]


def test_two_workers_write_the_same_content(reference, digits_npz: Path, tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    summary = run_audit(make_options(digits_npz, tmp_path / "a", workers=2))
    assert summary["run"]["workers"] == 2 and summary["run"]["shards_written"] == 3
    assert AuditStore(tmp_path / "a").read().equals(reference)
    assert summary["total_model_rows"] > 6 * 3 * 64


def test_interrupted_audit_resumes_without_loss_or_duplicates(  # type: ignore[no-untyped-def]
    reference, digits_npz: Path, tmp_path: Path, make_options
) -> None:
    out = tmp_path / "a"

    def stop(event: ShardEvent, executor: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(make_options(digits_npz, out, workers=2), on_shard=stop)
    assert len(AuditStore(out).done()) == 1
    summary = run_audit(make_options(digits_npz, out, workers=2))
    assert summary["run"]["resumed"] is True
    assert summary["run"]["inputs_explained"] == 4
    table = AuditStore(out).read()
    assert table.equals(reference)


def test_killed_worker_loses_and_duplicates_nothing(  # type: ignore[no-untyped-def]
    reference, digits_npz: Path, tmp_path: Path, make_options
) -> None:
    killed: list[int] = []

    def kill_once(event: ShardEvent, executor: object) -> None:
        # only while a chunk is still to finish: losing the pool then must cost a rerun (one input per
        # chunk keeps several chunks in flight at every shard)
        if not killed and isinstance(executor, LocalExecutor) and executor.unfinished():
            pid = int(event.worker.rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    summary = run_audit(make_options(digits_npz, tmp_path / "a", workers=2, chunk_size=1), on_shard=kill_once)
    assert killed and summary["run"]["chunks_rerun_after_worker_loss"] >= 1
    table = AuditStore(tmp_path / "a").read()
    assert table.column("id").to_pylist() == list(range(6))
    assert table.equals(reference)


def test_resume_with_other_settings_is_refused(digits_npz: Path, tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    run_audit(make_options(digits_npz, out, workers=1, limit=2))
    with pytest.raises(AuditError, match=r"different dataset or settings.*explain"):
        run_audit(make_options(digits_npz, out, workers=1, limit=2, threshold=0.8))


def test_budget_stops_scheduling_and_a_rerun_finishes(  # type: ignore[no-untyped-def]
    reference, digits_npz: Path, tmp_path: Path, make_options
) -> None:
    out = tmp_path / "a"
    first = run_audit(make_options(digits_npz, out, workers=1, max_total_evaluations=1))
    assert first["run"]["stopped_by_budget"] is True and first["run"]["chunks_left"] > 0
    run_audit(make_options(digits_npz, out, workers=1))
    assert AuditStore(out).read().equals(reference)


def test_per_input_budget_keeps_partial_results(digits_npz: Path, tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    run_audit(make_options(digits_npz, tmp_path / "a", workers=1, limit=2, max_evaluations=100))
    cols = AuditStore(tmp_path / "a").read().to_pydict()
    assert set(cols["dense_status"]) <= {"partial", "not_confident"}
    assert all(e <= 100 for e in cols["dense_evaluations"])


def test_wrong_shape_fails_before_any_work(tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 1, 7, 7), dtype=np.float32))
    out = tmp_path / "a"
    with pytest.raises(AuditError, match=r"shape \[1, 7, 7\], the pair expects \[1, 8, 8\]"):
        run_audit(make_options(bad, out))
    assert not out.exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisguard.client.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_bad_dataset_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 64), dtype=np.float32))
    done = _cli("audit", str(bad), "--out", str(tmp_path / "a"), "--no-progress")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "the pair expects [1, 8, 8]" in done.stderr


def test_cli_unreachable_ray_address_is_one_line(digits_npz: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    out = tmp_path / "a"
    done = _cli("audit", str(digits_npz), "--out", str(out), "--ray-address", f"127.0.0.1:{port}", "--no-progress")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in done.stderr
    assert not out.exists()


def test_a_second_audit_on_a_running_folder_is_refused(digits_npz: Path, tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a"
    running = AuditStore(out)
    running.lock()  # as an audit in another process holds it
    try:
        with pytest.raises(AuditError, match="another audit is running"):
            run_audit(make_options(digits_npz, out, workers=1, limit=2))
    finally:
        running.unlock()
    run_audit(make_options(digits_npz, out, workers=1, limit=2))
    assert AuditStore(out).read().num_rows == 2
