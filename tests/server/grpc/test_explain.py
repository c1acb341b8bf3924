"""Explain and ExplainStream through a real server: the public SIS cases, agreement, limits, streaming."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest
from support.models import L2Score, LinearScore, export
from support.server import running, write_config

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.wire import from_tensor, to_tensor


@pytest.fixture(scope="module")
def score_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scores")
    return {
        "l2": export(L2Score(), d / "l2.onnx", (4,), output_name="score"),
        "linear": export(LinearScore([1, 2, 0, 1]), d / "linear.onnx", (4,), output_name="score"),
    }


@pytest.fixture
async def score_server(tmp_path: Path, score_models):
    pairs = [
        {
            "name": name,
            "dense": str(path),
            "pruned": str(path),
            "output_kind": "scores",
            "max_batch_size": 2,
            "explain": {"features": "element", "baseline": "zeros"},
        }
        for name, path in score_models.items()
    ]
    config = write_config(tmp_path, pairs, runtime={"providers": ["cpu"]})
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.SISGuardStub(channel)


def collection(v: pb.VariantExplanation) -> list[list[int]]:
    return [list(s.features) for s in v.sis]


@pytest.mark.parametrize(
    ("pair", "x", "tau", "expected"),
    [
        ("l2", [0.9, 0.9, 10, 5], 1.0, [[2], [3], [1, 0]]),
        ("linear", [5, 1, 6, 3], 5.0, [[0], [3, 1]]),
    ],
)
async def test_public_cases_through_the_server(score_server, pair, x, tau, expected) -> None:
    req = pb.ExplainRequest(
        pair=pair,
        input=to_tensor(np.array(x, np.float32)),
        threshold_absolute=tau,
        max_sis=5,
        return_backselect=True,
    )
    resp = await score_server.Explain(req)
    for v in (resp.dense, resp.pruned):
        assert v.status == pb.FOUND
        assert collection(v) == expected
    assert resp.agreement.iou_first == 1.0
    assert not resp.agreement.divergent
    # max_batch_size 2 < d = 4: every BackSelect step was chunked; d(d+1)/2 rows in the first round
    assert len(resp.dense.backselect[0].order) == 4
    mask = from_tensor(resp.dense.sis[0].mask, "mask", 100)
    assert mask.dtype == np.bool_ and mask.tolist() == [i in expected[0] for i in range(4)]


async def test_not_confident_and_baseline_sufficient(score_server) -> None:
    x = to_tensor(np.array([0.1, 0.1, 0.1, 0.1], np.float32))
    resp = await score_server.Explain(pb.ExplainRequest(pair="l2", input=x, threshold_absolute=5.0))
    assert resp.dense.status == pb.NOT_CONFIDENT and len(resp.dense.sis) == 0
    resp = await score_server.Explain(pb.ExplainRequest(pair="l2", input=x, threshold_absolute=-1.0))
    assert resp.dense.status == pb.BASELINE_SUFFICIENT
    assert [list(s.features) for s in resp.dense.sis] == [[]]


async def test_budget_exhausted_or_partial(score_server) -> None:
    x = to_tensor(np.array([0.9, 0.9, 10, 5], np.float32))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await score_server.Explain(pb.ExplainRequest(pair="l2", input=x, threshold_absolute=1.0, max_evaluations=5))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    resp = await score_server.Explain(
        pb.ExplainRequest(pair="l2", input=x, threshold_absolute=1.0, max_sis=3, max_evaluations=15, allow_partial=True)
    )
    assert resp.dense.status == pb.PARTIAL
    assert collection(resp.dense) == [[2]]


async def test_identical_requests_are_cached(score_server) -> None:
    req = pb.ExplainRequest(pair="linear", input=to_tensor(np.array([5, 1, 6, 3], np.float32)), threshold_absolute=5)
    first = await score_server.Explain(req)
    second = await score_server.Explain(req)
    assert not first.cached and second.cached
    assert collection(first.dense) == collection(second.dense)


async def test_stream_reports_progress_then_result(score_server) -> None:
    req = pb.ExplainRequest(
        pair="l2", input=to_tensor(np.array([0.9, 0.9, 10, 5], np.float32)), threshold_absolute=1.0
    )
    events = [ev async for ev in score_server.ExplainStream(req)]
    progress = [e.progress for e in events[:-1]]
    assert events[-1].HasField("result")
    assert {p.variant for p in progress} == {pb.DENSE, pb.PRUNED}
    dense_steps = [p for p in progress if p.variant == pb.DENSE]
    assert [p.features_left for p in dense_steps] == [3, 2, 1, 0]
    assert collection(events[-1].result.dense) == [[2]]


BAD = [
    (dict(input=to_tensor(np.zeros(5, np.float32))), grpc.StatusCode.INVALID_ARGUMENT, "expected one input [4]"),
    (
        dict(input=to_tensor(np.ones(4, np.float32)), threshold_absolute=float("nan")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "finite",
    ),
    (dict(input=to_tensor(np.ones(4, np.float32)), target=3), grpc.StatusCode.INVALID_ARGUMENT, "out of range"),
    (
        dict(
            input=to_tensor(np.ones(4, np.float32)),
            features=pb.EXPLICIT,
            group_map=to_tensor(np.array([0, 0, 2, 2], np.int32)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "missing",
    ),
    (
        dict(
            input=to_tensor(np.ones(4, np.float32)), features=pb.EXPLICIT, group_map=to_tensor(np.zeros(0, np.int32))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "group map",
    ),
    (
        dict(
            input=to_tensor(np.ones(4, np.float32)),
            baseline=pb.CUSTOM,
            baseline_tensor=to_tensor(np.zeros(3, np.float32)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "baseline",
    ),
    (dict(input=to_tensor(np.ones(4, np.float32)), max_sis=1000), grpc.StatusCode.INVALID_ARGUMENT, "max_sis"),
    (dict(input=to_tensor(np.ones(4, np.float32)), mode=pb.BATCHED), grpc.StatusCode.INVALID_ARGUMENT, "batch_k"),
    (dict(), grpc.StatusCode.INVALID_ARGUMENT, "input missing"),
]


@pytest.mark.parametrize(("fields", "code", "fragment"), BAD)
async def test_bad_explain_requests(score_server, fields, code, fragment) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await score_server.Explain(pb.ExplainRequest(pair="l2", **fields))
    assert info.value.code() == code
    assert fragment in info.value.details()


async def test_too_many_features(tmp_path: Path, model_pair) -> None:
    pairs = [{"name": "mini", "dense": str(model_pair[0]), "pruned": str(model_pair[1])}]
    config = write_config(tmp_path, pairs, runtime={"providers": ["cpu"]}, limits={"max_features": 16})
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        x = to_tensor(np.ones((1, 8, 8), np.float32))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Explain(pb.ExplainRequest(pair="mini", input=x, features=pb.PIXEL))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "64" in info.value.details() and "16" in info.value.details()
        resp = await stub.Explain(
            pb.ExplainRequest(
                pair="mini", input=x, features=pb.PATCH, patch_height=2, patch_width=2, threshold_relative=0.5
            )
        )
        assert resp.num_features == 16


async def test_deadline_stops_the_explanation(app) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        rng = np.random.default_rng(1)
        for _ in range(50):  # an input whose target score is well above the all-masked score
            x = rng.random((1, 8, 8), dtype=np.float32)
            both = np.concatenate([x[None], np.zeros((1, 1, 8, 8), np.float32)])
            p = await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(both), variant=pb.DENSE))
            probs = from_tensor(p.dense.probabilities, "p", 100)
            target = int(probs[0].argmax())
            if probs[0, target] > probs[1, target] + 0.05:
                break
        tau = float(probs[0, target] + probs[1, target]) / 2
        req = pb.ExplainRequest(
            pair="mini", input=to_tensor(x), features=pb.ELEMENT, threshold_absolute=tau, target=target, max_sis=64
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Explain(req, timeout=0.02)  # 64 features: thousands of evaluations per round
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(0.3)
        assert app.dataplane.explanations.running == 0  # the computation stopped and freed its slot
        assert all(b.queued_rows == 0 for b in app.dataplane.pairs["mini"].batchers.values())
        resp = await stub.Explain(req)  # without a deadline the same request completes
        assert resp.dense.status == pb.FOUND


async def test_background_explanations_neither_fill_the_cache_nor_take_client_slots(app) -> None:
    from sisguard.server.batching.batcher import BACKGROUND
    from sisguard.server.core.resolve import ExplainOptions

    x = np.random.default_rng(5).random((1, 8, 8), dtype=np.float32)
    opts = ExplainOptions(threshold=0.5, threshold_relative=True, features="pixel")
    shadow = await app.dataplane.explain("mini", x, opts, None, priority=BACKGROUND, source="shadow")
    assert not shadow.cached and app.dataplane.explanations.running == 0
    first = await app.dataplane.explain("mini", x, opts, None)
    again = await app.dataplane.explain("mini", x, opts, None)
    assert not first.cached and again.cached
