"""Every SDK method against a real sisguard server (pair "mini"), for Client and AsyncClient alike."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
import pytest

from sisguard.client import (
    Baseline,
    ExplainProgress,
    Explanation,
    Features,
    NotFound,
    PairInfo,
    Prediction,
)

RNG = np.random.default_rng(7)
# Scaled so that the random "mini" MLP is confident enough on X[0] and X[1] for both models to
# have a SIS at the pair's default threshold (0.5 x f_dense(x)).
X = RNG.random((5, 1, 8, 8), dtype=np.float32) * np.float32(4.0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return softmax(sess.run(None, {"input": x})[0])


def check_masks(e: Explanation) -> None:
    """Each SIS mask marks exactly the elements of its features in the group map."""
    assert e.group_map is not None and e.group_map.shape == (1, 8, 8)
    for v in e.variants.values():
        for s in v.sis:
            assert s.mask.dtype == np.bool_ and s.mask.shape == (1, 8, 8)
            np.testing.assert_array_equal(s.mask, np.isin(e.group_map, s.features))
            assert s.score >= e.threshold - 1e-6


async def test_health(connect, address) -> None:
    c = connect(address)
    assert await c.call("health") == "SERVING"
    assert await c.call("health", "sisguard.v1.SISGuard") == "SERVING"
    with pytest.raises(NotFound):
        await c.call("health", "no.such.Service")


async def test_models(connect, address, model_pair) -> None:
    (info,) = await connect(address).call("models")
    assert isinstance(info, PairInfo)
    assert (info.name, info.input_shape, info.input_dtype, info.num_outputs) == ("mini", (1, 8, 8), np.float32, 10)
    assert info.class_labels == tuple(str(i) for i in range(10))
    assert info.output_kind == "logits" and info.max_batch_size == 8
    assert info.dense.sha256 == hashlib.sha256(model_pair[0].read_bytes()).hexdigest()
    assert info.pruned.sha256 == hashlib.sha256(model_pair[1].read_bytes()).hexdigest()
    assert info.dense.execution_provider == "CPUExecutionProvider"
    assert 0.0 < info.prune_ratio < 1.0
    d = info.explain_defaults
    assert (d.threshold, d.threshold_relative, d.features) == (0.5, True, "pixel")
    assert info.to_dict()["input_dtype"] == "float32"


async def test_predict_both_matches_onnxruntime(connect, address, model_pair) -> None:
    p = await connect(address).call("predict", "mini", X)
    assert isinstance(p, Prediction) and p.pair == "mini" and p.request_id
    dense, pruned = reference(model_pair[0], X), reference(model_pair[1], X)
    assert p.dense is not None and p.pruned is not None
    assert p.dense.probabilities.dtype == np.float32 and p.dense.probabilities.shape == (5, 10)
    np.testing.assert_allclose(p.dense.probabilities, dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p.pruned.probabilities, pruned, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(p.dense.top1, dense.argmax(1))
    np.testing.assert_allclose(p.dense.top1_probability, dense.max(1), rtol=1e-5)
    np.testing.assert_array_equal(p.top1_agree, dense.argmax(1) == pruned.argmax(1))
    gap = dense.max(1) - pruned[np.arange(5), dense.argmax(1)]
    np.testing.assert_allclose(p.confidence_gap, gap, atol=1e-5)


@pytest.mark.parametrize("variant", ["dense", "pruned"])
async def test_predict_one_variant(connect, address, variant) -> None:
    p = await connect(address).call("predict", "mini", X[:2], variant=variant)
    assert (p.dense is not None, p.pruned is not None) == (variant == "dense", variant == "pruned")
    assert p.top1_agree is None and p.confidence_gap is None
    assert p.first.probabilities.shape == (2, 10)


async def test_predict_single_float64_input_is_batched_and_cast(connect, address) -> None:
    c = connect(address)
    one = (await c.call("predict", "mini", X[0].astype(np.float64))).dense
    batch = (await c.call("predict", "mini", X[:1])).dense
    assert one.probabilities.shape == (1, 10)
    np.testing.assert_allclose(one.probabilities, batch.probabilities, rtol=1e-6)


async def test_explain_defaults(connect, address) -> None:
    e = await connect(address).call("explain", "mini", X[0])
    assert isinstance(e, Explanation) and e.pair == "mini" and e.request_id
    assert e.num_features == 64  # the pair's default: pixel features on [1, 8, 8]
    np.testing.assert_array_equal(e.group_map, Features.pixel().group_map((1, 8, 8)))
    assert e.dense is not None and e.pruned is not None and e.agreement is not None
    for v in (e.dense, e.pruned):
        assert v.status == "found" and len(v.sis) == 1 and v.evaluations > 0 and v.seconds >= 0
        assert v.confidence >= e.threshold
    assert e.evaluations == e.dense.evaluations + e.pruned.evaluations
    a = e.agreement
    assert 0.0 <= a.iou_first <= 1.0 and a.dense_sis_size == len(e.dense.sis[0])
    dense_set, pruned_set = set(e.dense.sis[0].features.tolist()), set(e.pruned.sis[0].features.tolist())
    assert a.iou_first == pytest.approx(len(dense_set & pruned_set) / len(dense_set | pruned_set))
    assert e.target == e.dense.top1
    check_masks(e)
    assert e.to_dict()["dense"]["sis"][0]["mask"][0][0][0] in (True, False)


ROWS = np.repeat(np.arange(8), 8).reshape(8, 8)


@pytest.mark.parametrize(
    ("options", "features"),
    [
        ({"features": "element"}, 64),
        ({"features": Features.patches(2, 2)}, 16),
        ({"features": "patch:4x2"}, 8),
        ({"features": ROWS}, 8),
        ({"features": Features.explicit(ROWS[None])}, 8),
        ({"features": "patch:2x2", "max_sis": 3}, 16),
        ({"features": "patch:2x2", "baseline": Baseline.constant(0.5)}, 16),
        ({"features": "patch:2x2", "baseline": 0.25}, 16),
        ({"features": "patch:2x2", "baseline": np.full((1, 8, 8), 0.1)}, 16),
        ({"features": "patch:2x2", "baseline": "zeros", "threshold": 0.3}, 16),
        ({"features": "patch:2x2", "target": 3, "threshold": 0.0}, 16),
        ({"features": "element", "mode": "batched", "batch_k": 4}, 64),
    ],
    ids=lambda v: (
        "-".join(f"{k}={v[k] if isinstance(v[k], str | int | float) else type(v[k]).__name__}" for k in v)
        if isinstance(v, dict)
        else str(v)
    ),
)
async def test_explain_options(connect, address, options, features) -> None:
    e = await connect(address).call("explain", "mini", X[1], **options)
    assert e.num_features == features
    assert int(e.group_map.max()) + 1 == features
    if "target" in options:
        assert e.target == options["target"]
    if options.get("max_sis", 1) > 1:
        assert 1 <= len(e.dense.sis) <= options["max_sis"]
        used = np.concatenate([s.features for s in e.dense.sis])
        assert len(set(used.tolist())) == used.size  # disjoint
    check_masks(e)


async def test_explain_one_variant_has_no_agreement(connect, address) -> None:
    e = await connect(address).call("explain", "mini", X[2], variants="pruned", features="patch:2x2")
    assert e.dense is None and e.pruned is not None and e.agreement is None
    assert list(e.variants) == ["pruned"]


async def test_explain_backselect_traces(connect, address) -> None:
    e = await connect(address).call("explain", "mini", X[0], features="patch:2x2", return_backselect=True)
    (trace,) = e.dense.backselect
    assert sorted(trace.order.tolist()) == list(range(16))  # BackSelect removes every feature
    assert trace.scores.shape == trace.order.shape


async def test_explain_stream_progress_then_result(connect, address) -> None:
    c = connect(address)
    x = X[1] + np.float32(1e-4 if c.kind == "async" else 0.0)  # the server caches explanations
    events = await c.stream("mini", x, features="patch:2x2", max_sis=2)
    *progress, result = events
    assert isinstance(result, Explanation) and not result.cached
    assert progress and all(isinstance(p, ExplainProgress) for p in progress)
    assert {p.variant for p in progress} == {"dense", "pruned"}
    assert all(0 <= p.features_left <= 16 for p in progress)
    assert isinstance(result, Explanation)
    plain = await c.call("explain", "mini", x, features="patch:2x2", max_sis=2)
    for name, v in plain.variants.items():
        assert [s.features.tolist() for s in v.sis] == [s.features.tolist() for s in result.variants[name].sis]
    check_masks(result)


def test_sync_stream_left_early_is_cancelled(address) -> None:
    from sisguard.client import Client

    with Client(address) as c:
        stream = c.explain_stream("mini", X[0] + np.float32(2e-4), features="element", max_sis=4)
        first = next(stream)
        assert isinstance(first, ExplainProgress)
        stream.close()  # cancels the call without raising
        assert c.health() == "SERVING"


async def test_context_managers_close_the_channel(address) -> None:
    from sisguard.client import AsyncClient, Client, SISGuardError

    with Client(address) as c:
        assert c.health() == "SERVING"
    with pytest.raises(SISGuardError, match="closed"):
        c.health()
    with pytest.raises(SISGuardError, match="closed"):
        next(c.explain_stream("mini", X[0]))
    async with AsyncClient(address) as ac:
        assert await ac.health() == "SERVING"
    with pytest.raises(SISGuardError, match="closed"):
        await ac.predict("mini", X)
    with pytest.raises(SISGuardError, match="closed"):
        await anext(ac.explain_stream("mini", X[0]))
