"""The data plane without gRPC: one method per use case, readiness checked by each, metrics observed."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sisguard.server.core.dataplane import DataPlane, ExplainProgress, InferRequest
from sisguard.server.core.explain import ExplainOutcome
from sisguard.server.core.resolve import ExplainOptions
from sisguard.server.errors import InvalidArgument, Unavailable
from sisguard.server.metrics import Metrics


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_every_use_case_refuses_before_start(build, make_rows) -> None:
    dp = build()
    x = make_rows(1)
    calls = [
        dp.predict("mini", x, "both", None),
        dp.infer(InferRequest("mini.dense", "", "input", x), None),
        dp.explain("mini", x, ExplainOptions(), None),
        dp.pair_health("mini"),
    ]
    for call in calls:
        with pytest.raises(Unavailable, match="not ready"):
            await call
    with pytest.raises(Unavailable):
        dp.list_pairs()


async def test_predict_runs_both_models_and_tells_observer_and_listeners(build, registry, make_rows) -> None:
    dp = build(metrics=Metrics(registry))
    seen: list[tuple[str, int]] = []
    dp.predict_listeners.append(lambda pair, x: seen.append((pair, len(x))))
    dp.start()
    try:
        result = await dp.predict("mini", make_rows(5), "both", None)
        dense_only = await dp.predict("mini", make_rows(2), "dense", None)
        with pytest.raises(InvalidArgument, match=r"inputs missing: expected a tensor \[batch, 1, 8, 8\]"):
            await dp.predict("mini", None, "both", None)
    finally:
        await dp.close()
    assert set(result.outputs) == {"dense", "pruned"} and result.outputs["dense"].probabilities.shape == (5, 10)
    assert np.allclose(result.outputs["pruned"].probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.top1_agree is not None and result.top1_agree.shape == (5,)
    assert set(dense_only.outputs) == {"dense"} and dense_only.top1_agree is None
    assert seen == [("mini", 5), ("mini", 2)]
    assert value(registry, "sisguard_prediction_compared_rows_total", pair="mini") == 5  # BOTH only
    # each batcher reports under its own (pair, variant), named when it was built
    assert value(registry, "sisguard_batch_size_rows_count", pair="mini", variant="dense") == 2
    assert value(registry, "sisguard_batch_size_rows_count", pair="mini", variant="pruned") == 1


async def test_infer_checks_names_against_the_model(dataplane: DataPlane, make_rows) -> None:
    x = make_rows(3)
    sig = dataplane.pairs["mini"].models["pruned"].signature
    result = await dataplane.infer(InferRequest("mini.pruned", "1", sig.input_name, x, [sig.output_name]), None)
    assert result.output_name == sig.output_name
    assert np.allclose(result.raw, dataplane.pairs["mini"].models["pruned"].run(x), atol=1e-6)
    wrong = [
        (InferRequest("mini.pruned", "2", sig.input_name, x), "version 1 only"),
        (InferRequest("mini.pruned", "", "pixels", x), "unknown input 'pixels'"),
        (InferRequest("mini.pruned", "", sig.input_name, x, ["probs"]), "unknown output 'probs'"),
        (InferRequest("mini.pruned", "", sig.input_name, x[:, :, :4]), "does not match pair mini"),
    ]
    for request, message in wrong:
        with pytest.raises(InvalidArgument, match=message):
            await dataplane.infer(request, None)


def test_list_pairs_reports_the_default_feature_count(dataplane: DataPlane) -> None:
    (summary,) = dataplane.list_pairs()
    assert summary.pair.name == "mini" and summary.default_num_features == 64  # element features of [1, 8, 8]


async def test_explain_is_observed_with_its_typed_outcome(build, registry, make_rows) -> None:
    dp = build(metrics=Metrics(registry))
    dp.start()
    try:
        outcome = await dp.explain("mini", make_rows(1), ExplainOptions(features="pixel"), None)
        again = await dp.explain("mini", make_rows(1), ExplainOptions(features="pixel"), None)
    finally:
        await dp.close()
    assert isinstance(outcome, ExplainOutcome) and not outcome.cached and again.cached
    assert outcome.explanation.dense is not None and outcome.explanation.pruned is not None
    r = {"pair": "mini", "source": "request"}
    assert value(registry, "sisguard_explanations_total", **r) == 2
    assert value(registry, "sisguard_explain_cache_hits_total", pair="mini") == 1
    assert value(registry, "sisguard_explain_evaluations_total", variant="dense", **r) == (
        outcome.explanation.dense.evaluations
    )


@pytest.mark.parametrize(("size", "cached"), [(0, [False, False, False]), (1, [False, False, False]),
                                              (2, [False, False, True])])
async def test_the_explain_cache_size_is_a_setting(build, make_rows, size: int, cached: list[bool]) -> None:
    dp = build(limits={"explain_cache_size": size})
    a, b = make_rows(1, seed=1), make_rows(1, seed=2)
    opts = ExplainOptions(features="pixel")
    dp.start()
    try:
        hits = [(await dp.explain("mini", x, opts, None)).cached for x in (a, b, a)]  # LRU of `size` entries
    finally:
        await dp.close()
    assert hits == cached


async def test_explain_stream_yields_progress_then_the_outcome(dataplane: DataPlane, make_rows) -> None:
    items = [item async for item in dataplane.explain_stream("mini", make_rows(1), ExplainOptions(), None)]
    *progress, last = items
    assert isinstance(last, ExplainOutcome)
    assert progress and all(isinstance(p, ExplainProgress) for p in progress)
    assert {p.variant for p in progress} == {"dense", "pruned"}
    assert max(p.event.evaluations for p in progress if p.variant == "dense") <= last.explanation.dense.evaluations


async def test_closing_the_stream_stops_the_explanation(dataplane: DataPlane, make_rows) -> None:
    stream = dataplane.explain_stream("mini", make_rows(1), ExplainOptions(max_sis=8), None)
    async with contextlib.aclosing(stream):
        first = await anext(stream)
        assert isinstance(first, ExplainProgress)
        assert dataplane.explanations.running == 1
    assert dataplane.explanations.running == 0  # stopped and its slot freed when the stream closed
    assert all(b.queued_rows == 0 for b in dataplane.pairs["mini"].batchers.values())


async def test_the_full_input_is_scored_once_per_model(build, registry, make_rows) -> None:
    dp = build(metrics=Metrics(registry))
    dp.start()
    try:
        outcome = await dp.explain("mini", make_rows(1), ExplainOptions(features="pixel"), None)
    finally:
        await dp.close()
    for variant in ("dense", "pruned"):
        result = getattr(outcome.explanation, variant)
        assert result.status == "found"
        assert result.full_score == outcome.full_scores[variant]  # the engine took the score the use case made
        rows = value(registry, "sisguard_batch_size_rows_sum", pair="mini", variant=variant)
        # f(x) once (counted in the evaluations though run before the engine), the rest of the
        # engine's evaluations, and one row checking the other model's first SIS
        assert rows == result.evaluations + 1
