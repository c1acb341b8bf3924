"""Caller mistakes on the several-input, token and tabular paths through a real server: each is
answered INVALID_ARGUMENT saying what was expected, and the server goes on serving."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.byom_models import GOOD, ByomModels, tabular_data
from support.byom_pairs import sklearn_pair
from support.server import running, write_config

from sisguard.audit.dataset import load_dataset
from sisguard.audit.errors import AuditError
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import to_tensor


async def _status(call, request) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        await call(request, timeout=30)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_token_baselines_outside_the_vocabulary_are_refused(byom_config: Path) -> None:
    """A baseline of token ids is checked like the input: a negative id (which the embedding's Gather
    would silently read from the table's end) or a fractional one is refused naming the range."""
    ids = np.array([9, GOOD, 11, 12, GOOD, 14, 15, 16], np.int64)
    t = to_tensor

    def explain(**kw: object) -> pb.ExplainRequest:
        return pb.ExplainRequest(pair="text", input=t(ids), **kw)  # type: ignore[arg-type]

    cases = [
        (explain(baseline=pb.CONSTANT, baseline_constant=-1), "vocabulary is ids 0 to 63"),
        (explain(baseline=pb.CONSTANT, baseline_constant=99), "vocabulary is ids 0 to 63"),
        (explain(baseline=pb.CUSTOM, baseline_tensor=t(np.full(8, -3, np.int64))), "vocabulary is ids 0 to 63"),
        (explain(baseline=pb.CUSTOM, baseline_tensor=t(np.full(8, 2.5, np.float32))), "whole numbers"),
    ]
    async with running(byom_config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        for request, words in cases:
            code, details = await _status(stub.Explain, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (words, code, details)
            assert words in details, (words, details)
        ok = await stub.Explain(
            pb.ExplainRequest(pair="text", input=t(ids), baseline=pb.CONSTANT, baseline_constant=3), timeout=30
        )
        assert ok.num_features == 8


async def test_a_text_explain_stream_cancelled_midway_is_cancelled_not_internal(byom_config: Path) -> None:
    """The client cancels after the first progress event: the server's next write fails, and the
    call is recorded as CANCELLED (a client's choice), never as an internal error; it keeps serving."""
    seq = np.random.default_rng(0).integers(7, 40, size=40).astype(np.int64)
    seq[[3, 20]] = GOOD
    async with running(byom_config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        finished: asyncio.Queue[str] = asyncio.Queue()
        record = app.metrics.call_finished

        def spy(rpc: str, code: str, seconds: float) -> None:
            record(rpc, code, seconds)
            if rpc == "ExplainStream":
                finished.put_nowait(code)

        app.metrics.call_finished = spy  # type: ignore[method-assign]
        codes = []
        for _ in range(6):
            call = stub.ExplainStream(pb.ExplainRequest(pair="text", input=to_tensor(seq)))
            async for _event in call:
                call.cancel()
                break
            codes.append(await asyncio.wait_for(finished.get(), 30))
        assert codes == ["CANCELLED"] * 6, codes
        ok = await stub.Explain(pb.ExplainRequest(pair="text", input=to_tensor(seq)), timeout=60)
        assert ok.num_features == 40


def test_audit_refuses_a_corrupt_npz_in_one_line(tmp_path: Path) -> None:
    """A file named .npz that is not a whole zip archive (cut short by a copy, or not a zip at all)
    is the dataset's fault: an AuditError naming the file, not the zip module's traceback."""
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((2, 1, 8, 8), np.float32))
    data = good.read_bytes()
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, x=np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32))
    damaged = bytearray(packed.read_bytes())
    damaged[200:400] = bytes(b ^ 0x55 for b in damaged[200:400])  # inside the deflated member
    cases = (("cut.npz", data[: len(data) // 2]), ("junk.npz", b"PK\x03\x04 not a zip"), ("bad.npz", bytes(damaged)))
    for name, body in cases:
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(AuditError, match=f"dataset {path} is not a readable .npz file"):
            load_dataset(path, (1, 8, 8), np.dtype(np.float32))


def _audit_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sisguard.client.cli", "audit", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("threshold", "words"),
    [("nan", "threshold"), ("inf", "threshold"), ("2", "threshold tau 2 is outside [0, 1]"), ("-1", "outside [0, 1]")],
)
def test_audit_refuses_a_threshold_no_probability_can_meet_in_one_line(
    tmp_path: Path, threshold: str, words: str
) -> None:
    """The digits pair's scores are probabilities: a NaN or infinite tau, or one outside [0, 1], is a
    usage error in one line (not the engine's traceback, nor an audit where every input is not confident)."""
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 1, 8, 8), np.float32))
    out = tmp_path / "a"
    done = _audit_cli(str(data), "--out", str(out), "--workers", "1", "--no-progress", "--threshold", threshold)
    assert done.returncode in (1, 2), done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "sisguard audit: error:" in done.stderr and words in done.stderr, done.stderr
    assert not (out / "shards").exists() or not any((out / "shards").iterdir())


def test_audit_takes_the_documented_retries_option(tmp_path: Path) -> None:
    """docs/audit.md documents --retries (reruns of a chunk whose worker died): the CLI takes it and
    checks it like the other options, instead of refusing it as an unknown argument."""
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 1, 8, 8), np.float32))
    done = _audit_cli(str(data), "--out", str(tmp_path / "a"), "--no-progress", "--retries", "-1")
    assert done.returncode == 2 and "retries: Input should be greater than or equal to 0" in done.stderr, done.stderr


@pytest.mark.parametrize("labels", [[0, 10], [-1, 3]])
def test_audit_refuses_labels_outside_the_models_classes(tmp_path: Path, labels: list[int]) -> None:
    """The digits models have 10 outputs: a label of 10 or -1 can never match a top-1 class, so the
    audit's accuracy would be silently wrong; it is refused before any model runs, naming the range."""
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((2, 1, 8, 8), np.float32), y=np.array(labels, np.int64))
    done = _audit_cli(str(data), "--out", str(tmp_path / "a"), "--workers", "1", "--no-progress")
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "labels must be classes 0 to 9" in done.stderr, done.stderr


def test_audit_reads_the_probabilities_of_a_scikit_learn_pair_as_the_server_does(
    tmp_path: Path, byom: ByomModels
) -> None:
    """The server explains the scikit-learn pair through its float ``probabilities`` output (next to
    the integer ``label``); the audit of that same pair picks the same output instead of refusing it."""
    config = write_config(tmp_path, [sklearn_pair(byom, tmp_path)], runtime={"providers": ["cpu"]})
    data = tmp_path / "tab.npz"
    np.savez(data, x=tabular_data(3, 1)[0])
    out = tmp_path / "a"
    done = _audit_cli(str(data), "--config", str(config), "--out", str(out), "--workers", "1", "--no-progress")
    assert done.returncode == 0, done.stderr
    import pyarrow.parquet as pq

    probs = np.array(pq.read_table(out / "shards").column("dense_probs").to_pylist())
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # the probabilities, not the label


async def test_a_named_input_with_a_batch_axis_next_to_unbatched_features_names_the_shape_sent(
    byom_config: Path,
) -> None:
    """Explain's features sent as one sample [n] and the attention mask as [1, n]: the message gives
    the shape the caller sent ([1, 8]) and that it must be one sample like the features."""
    ids = np.array([9, GOOD, 11, 12, GOOD, 14, 15, 16], np.int64)
    request = pb.ExplainRequest(
        pair="text", input=to_tensor(ids), named_inputs={"attention_mask": to_tensor(np.ones((1, 8), np.int64))}
    )
    async with running(byom_config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        code, details = await _status(pb_grpc.SISGuardStub(ch).Explain, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "attention_mask shape [1, 8]" in details and "one sample like input_ids [8]" in details, details
