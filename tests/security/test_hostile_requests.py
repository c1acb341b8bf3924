"""Hostile request bodies and options: each ends with the caller's status and a message saying
what was expected, costs the server no memory in proportion to a number in the request, and
the server keeps serving."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from security.hostile_models import TOKENS, token_model
from support.server import running, write_config

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.grpc.guard import SMALL_MESSAGE_BYTES
from sisguard.server.grpc.status import MAX_DETAILS_CHARS
from sisguard.wire import to_tensor

X = np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)
PREDICT = "/sisguard.v1.SISGuard/Predict"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, model_pair: tuple[Path, Path]) -> Path:
    dense, pruned = model_pair
    return write_config(
        tmp_path_factory.mktemp("hostile"),
        [{"name": "mini", "dense": str(dense), "pruned": str(pruned), "output_kind": "logits", "max_batch_size": 8}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )


@pytest.fixture
async def channel(config: Path) -> AsyncIterator[grpc.aio.Channel]:
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


async def still_serving(ch: grpc.aio.Channel) -> None:
    req = pb.PredictRequest(pair="mini", inputs=to_tensor(X[None]))
    await pb_grpc.SISGuardStub(ch).Predict(req, timeout=30)


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- item 2: one large group id --------------------------------------------------------------


@pytest.mark.parametrize("big", [2**27, 2**31 - 1])
async def test_a_large_group_id_is_refused_before_any_allocation(channel: grpc.aio.Channel, big: int) -> None:
    groups = np.zeros((8, 8), np.int32)
    groups[0, 0] = big
    req = pb.ExplainRequest(pair="mini", input=to_tensor(X), features=pb.EXPLICIT, group_map=to_tensor(groups))
    assert len(req.SerializeToString()) < 600
    before = max_rss_mb()
    code, details = await status_of(pb_grpc.SISGuardStub(channel).Explain(req, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "server allows at most 4096" in details
    # 8.5 bytes per id value would be over 1 GB for 2**27; the peak did not move by 100 MB.
    assert max_rss_mb() - before < 100
    await still_serving(channel)


# -- item 4: bodies that do not decode, values out of range -----------------------------------


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff", pb.PredictRequest(pair="mini", inputs=to_tensor(X[None])).SerializeToString()[:-7]],
    ids=["garbage", "truncated"],
)
async def test_undecodable_bodies_are_invalid_argument(channel: grpc.aio.Channel, body: bytes) -> None:
    code, details = await status_of(channel.unary_unary(PREDICT)(body, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in details
    assert "class" not in details and "DecodeError" not in details
    await still_serving(channel)


async def test_small_rpcs_have_a_small_message_limit(channel: grpc.aio.Channel) -> None:
    # An unknown field of 1 MiB: valid protobuf, but no ListModels request needs that much.
    big = b"\xfa\x3f" + bytes([0x80, 0x80, 0x40]) + b"\0" * (1024 * 1024)
    code, details = await status_of(channel.unary_unary("/sisguard.v1.SISGuard/ListModels")(big, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit of {SMALL_MESSAGE_BYTES} bytes" in details
    code, details = await status_of(channel.unary_unary("/grpc.health.v1.Health/Check")(big, timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    await still_serving(channel)


# -- item 9: silent surprises in Explain options ----------------------------------------------

EXPLAIN_CASES = [
    # (what, request fields, fragment)
    ("patch height 0", {"features": pb.PATCH, "patch_height": 0, "patch_width": 2}, "at least 1x1, got 0x2"),
    ("patch larger than the input", {"features": pb.PATCH, "patch_height": 9, "patch_width": 9}, "larger than"),
    ("threshold 2 on probabilities", {"threshold_absolute": 2.0}, "outside [0, 1]"),
    ("threshold -1 on probabilities", {"threshold_absolute": -1.0}, "outside [0, 1]"),
    ("relative threshold 0", {"threshold_relative": 0.0}, "outside (0, 1]"),
    ("max_sis above the cap", {"max_sis": 65}, "max_sis must be between 1 and 64"),
    ("target out of range", {"target": 10}, "target 10 is out of range"),
]


@pytest.mark.parametrize(("what", "fields", "fragment"), EXPLAIN_CASES, ids=[c[0] for c in EXPLAIN_CASES])
async def test_explain_options_are_refused_not_reinterpreted(
    channel: grpc.aio.Channel, what: str, fields: dict[str, object], fragment: str
) -> None:
    req = pb.ExplainRequest(pair="mini", input=to_tensor(X), **fields)  # type: ignore[arg-type]
    code, details = await status_of(pb_grpc.SISGuardStub(channel).Explain(req, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert fragment in details
    await still_serving(channel)


async def test_max_sis_and_target_are_refused_before_any_model_runs(config: Path) -> None:
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        batcher = app.dataplane.pairs["mini"].batchers["dense"]
        runs: list[int] = []
        submit = batcher.submit

        async def counted(*args: object, **kw: object) -> np.ndarray:
            runs.append(1)
            return await submit(*args, **kw)  # type: ignore[arg-type]

        batcher.submit = counted  # type: ignore[method-assign]
        for fields in ({"max_sis": 65}, {"target": 10}):
            req = pb.ExplainRequest(pair="mini", input=to_tensor(X), **fields)  # type: ignore[arg-type]
            code, _ = await status_of(pb_grpc.SISGuardStub(ch).Explain(req, timeout=30))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert runs == []


async def test_a_huge_pair_name_is_not_found_with_a_short_message(channel: grpc.aio.Channel) -> None:
    req = pb.PredictRequest(pair="p" * 100_000, inputs=to_tensor(X[None]))
    code, details = await status_of(pb_grpc.SISGuardStub(channel).Predict(req, timeout=30))
    assert code == grpc.StatusCode.NOT_FOUND
    assert len(details) <= MAX_DETAILS_CHARS
    await still_serving(channel)


async def test_a_fractional_constant_baseline_on_integer_inputs_is_refused(tmp_path: Path) -> None:
    model = token_model(tmp_path / "tokens.onnx")
    cfg = write_config(
        tmp_path,
        [{"name": "tokens", "dense": str(model), "pruned": str(model)}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )
    async with running(cfg) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        x = np.ones(TOKENS, np.int64)
        req = pb.ExplainRequest(pair="tokens", input=to_tensor(x), baseline=pb.CONSTANT, baseline_constant=3.5)
        code, details = await status_of(pb_grpc.SISGuardStub(ch).Explain(req, timeout=30))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected a whole number" in details
        req = pb.ExplainRequest(pair="tokens", input=to_tensor(x), baseline=pb.CONSTANT, baseline_constant=3.0)
        assert (await pb_grpc.SISGuardStub(ch).Explain(req, timeout=30)).num_features == TOKENS


# -- item 7: a stream whose client never reads --------------------------------------------------


async def test_a_stream_the_client_does_not_read_is_ended_by_the_server(config: Path) -> None:
    limits = {"stream_write_timeout_seconds": 0.5}
    async with running(config, limits=limits) as app:
        # A tiny receive window: the server's writes block as soon as a few events are unread.
        opts = [("grpc.http2.lookahead_bytes", 256), ("grpc.http2.bdp_probe", 0)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=opts) as ch:
            req = pb.ExplainRequest(
                pair="mini", input=to_tensor(X), max_sis=64, threshold_relative=0.99, return_backselect=True
            )
            call = pb_grpc.SISGuardStub(ch).ExplainStream(req, timeout=120)
            await call.initial_metadata()
            # Wait (by events, not time) for the server to give up on the stalled stream.
            while app.drain.in_flight:
                await asyncio.sleep(0.05)
            call.cancel()
        # Nothing is left in flight to hold a shutdown's grace period.
        assert app.drain.in_flight == 0


def test_health_messages_fit_the_small_limit() -> None:
    assert len(health_pb2.HealthCheckRequest(service="x" * 200).SerializeToString()) < SMALL_MESSAGE_BYTES


async def test_the_health_only_port_takes_small_messages(config: Path) -> None:
    async with (
        running(config, health_port=0) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.health_port}") as ch,
    ):
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        big = health_pb2.HealthCheckRequest(service="x" * (SMALL_MESSAGE_BYTES + 1)).SerializeToString()
        code, _ = await status_of(check(big, timeout=30))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = await check(health_pb2.HealthCheckRequest().SerializeToString(), timeout=30)
        assert health_pb2.HealthCheckResponse.FromString(ok).status == health_pb2.HealthCheckResponse.SERVING
