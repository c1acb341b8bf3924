"""The metrics module on a fresh registry: names, label sets, buckets, and counts after known events."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sisguard.server.core.explain import ExplainOutcome
from sisguard.server.metrics import (
    BATCH_ROWS_BUCKETS,
    DIVERGENCE_REASONS,
    LATENCY_BUCKETS,
    UNIT_BUCKETS,
    Metrics,
    level_label,
)
from sisguard.server.pairs import split_infer_name
from sisguard.sis import AgreementResult, PairExplanation, SISResult, SubsetResult

ALLOWED_LABELS = {"pair", "variant", "rpc", "code", "reason", "source", "level", "provider"}


@pytest.fixture
def reg() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(reg: CollectorRegistry) -> Metrics:
    m = Metrics(reg)
    m.set_rpcs()
    m.set_pair_info("mini", prune_ratio=0.6, noise_levels=[0.05, 0.1], shadow_queue_size=4)
    for v in ("dense", "pruned"):
        m.set_model_info("mini", v, provider="CPUExecutionProvider", queue_capacity=100)
    return m


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    assert v is not None, f"no sample {name}{labels}"
    return v


def families(reg: CollectorRegistry):
    return {f.name: f for f in reg.collect()}


def test_names_units_and_label_sets(metrics: Metrics, reg: CollectorRegistry) -> None:
    fams = families(reg)
    assert len(fams) >= 35
    for name, fam in fams.items():
        assert name.startswith("sisguard_"), name
        assert not name.endswith("_total"), f"{name}: the client appends _total to counter samples"
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples), name
        if fam.type == "histogram":
            assert name.endswith(("_seconds", "_rows", "_features", "_first", "_union", "_gap", "_correlation"))
            assert not name.endswith("_milliseconds")
        for s in fam.samples:
            extra = set(s.labels) - ALLOWED_LABELS - {"le"}
            assert not extra, f"{s.name} has labels {extra}"
    assert fams["sisguard_requests"].type == "counter"
    assert fams["sisguard_model"].type == "info"


def test_buckets_fit_their_quantities(metrics: Metrics, reg: CollectorRegistry) -> None:
    def bounds(name: str) -> list[float]:
        fam = families(reg)[name]
        les = {s.labels["le"] for s in fam.samples if s.name.endswith("_bucket")}
        return sorted(float(x) for x in les if x != "+Inf")

    assert bounds("sisguard_batch_size_rows") == list(BATCH_ROWS_BUCKETS)
    assert all(math.log2(b).is_integer() for b in bounds("sisguard_batch_size_rows"))
    assert bounds("sisguard_request_duration_seconds") == list(LATENCY_BUCKETS)
    assert bounds("sisguard_agreement_iou_first") == list(UNIT_BUCKETS)
    assert min(bounds("sisguard_agreement_iou_union")) == 0.0 and max(bounds("sisguard_agreement_iou_union")) == 1.0
    assert min(bounds("sisguard_agreement_rank_correlation")) == -1.0


def test_series_exist_at_zero_after_registration(metrics: Metrics, reg: CollectorRegistry) -> None:
    for reason in DIVERGENCE_REASONS:
        for source in ("request", "shadow"):
            assert (
                value(reg, "sisguard_agreement_divergence_reasons_total", pair="mini", source=source, reason=reason)
                == 0
            )
    assert value(reg, "sisguard_noise_probe_copies_total", pair="mini", level="0.05") == 0
    assert value(reg, "sisguard_shadow_dropped_rows_total", pair="mini", reason="queue_full") == 0
    assert value(reg, "sisguard_model_ready", pair="mini", variant="dense") == 0
    assert value(reg, "sisguard_model_info", pair="mini", variant="pruned", provider="CPUExecutionProvider") == 1
    assert value(reg, "sisguard_queue_capacity_rows", pair="mini", variant="dense") == 100
    assert value(reg, "sisguard_pair_prune_ratio", pair="mini") == pytest.approx(0.6)
    assert value(reg, "sisguard_requests_total", rpc="Explain", code="OK") == 0


def test_calls_count_by_rpc_and_code(metrics: Metrics, reg: CollectorRegistry) -> None:
    metrics.call_started("Predict")
    metrics.call_started("Predict")
    assert value(reg, "sisguard_requests_in_flight", rpc="Predict") == 2
    metrics.call_finished("Predict", "OK", 0.003)
    metrics.call_finished("Predict", "INVALID_ARGUMENT", 0.0002)
    assert value(reg, "sisguard_requests_in_flight", rpc="Predict") == 0
    assert value(reg, "sisguard_requests_total", rpc="Predict", code="OK") == 1
    assert value(reg, "sisguard_requests_total", rpc="Predict", code="INVALID_ARGUMENT") == 1
    assert value(reg, "sisguard_request_failures_total", rpc="Predict", code="INVALID_ARGUMENT") == 1
    assert reg.get_sample_value("sisguard_request_failures_total", {"rpc": "Predict", "code": "OK"}) is None
    assert value(reg, "sisguard_request_duration_seconds_count", rpc="Predict") == 2
    assert value(reg, "sisguard_request_duration_seconds_bucket", rpc="Predict", le="0.0005") == 1


def test_batches_report_their_pair_and_variant(metrics: Metrics, reg: CollectorRegistry) -> None:
    # the model name is only taken apart where it is made (OIP naming); each batcher's observer is labelled
    assert split_infer_name("a.b.pruned") == ("a.b", "pruned")
    metrics.batch_observer("mini", "pruned").queue_changed("mini.pruned", 7)
    assert value(reg, "sisguard_queue_rows", pair="mini", variant="pruned") == 7
    metrics.batch_observer("mini", "dense").batch_done("mini.dense", 5, [0.001, 0.002], 0.01)
    labels = {"pair": "mini", "variant": "dense"}
    assert value(reg, "sisguard_batch_queue_wait_seconds_count", **labels) == 2
    assert value(reg, "sisguard_batch_compute_seconds_sum", **labels) == pytest.approx(0.01)
    assert value(reg, "sisguard_batch_size_rows_bucket", le="4.0", **labels) == 0
    assert value(reg, "sisguard_batch_size_rows_bucket", le="8.0", **labels) == 1


def test_prediction_agreement(metrics: Metrics, reg: CollectorRegistry) -> None:
    metrics.predicted("mini", np.array([True, False, True]), np.array([0.0, 0.5, -0.1], np.float32))
    assert value(reg, "sisguard_prediction_compared_rows_total", pair="mini") == 3
    assert value(reg, "sisguard_prediction_top1_agree_rows_total", pair="mini") == 2
    assert value(reg, "sisguard_prediction_confidence_gap_count", pair="mini") == 3
    assert value(reg, "sisguard_prediction_confidence_gap_bucket", pair="mini", le="0.0") == 2


def sis(features: tuple[int, ...], evaluations: int, score: float = 0.95) -> SISResult:
    return SISResult("found", (SubsetResult(features, score),), 0.97, 0.1, (), evaluations, 0.01)


def agreement(**over) -> AgreementResult:
    base = dict(
        top1_agree=True,
        confidence_gap=0.02,
        iou_first=0.5,
        iou_union=0.5,
        dense_sis_sufficient_for_pruned=True,
        pruned_sis_sufficient_for_dense=False,
        dense_sis_score_on_pruned=0.95,
        pruned_sis_score_on_dense=0.3,
        rank_correlation=0.8,
        dense_sis_size=2,
        pruned_sis_size=3,
        divergent=True,
        reasons=("pruned_sis_insufficient_for_dense",),
    )
    return AgreementResult(**{**base, **over})


def outcome(explanation: PairExplanation, cached: bool = False) -> ExplainOutcome:
    top1 = {"dense": 3, "pruned": 3}
    groups = np.arange(4, dtype=np.int32)
    return ExplainOutcome("mini", explanation, groups, 4, top1, {"dense": 0.97, "pruned": 0.97}, cached=cached)


def test_explained_feeds_agreement_metrics(metrics: Metrics, reg: CollectorRegistry) -> None:
    exp = PairExplanation(3, 0.9, sis((1, 2), 40), sis((2, 3, 4), 50), agreement())
    metrics.explained("mini", outcome(exp), 0.2, "shadow")
    calm = agreement(
        divergent=False, reasons=(), pruned_sis_sufficient_for_dense=True, rank_correlation=math.nan, iou_first=1.0
    )
    metrics.explained("mini", outcome(PairExplanation(3, 0.9, sis((1,), 10), sis((1,), 12), calm)), 0.1, "request")
    s, r = {"pair": "mini", "source": "shadow"}, {"pair": "mini", "source": "request"}
    assert value(reg, "sisguard_explanations_total", **s) == 1
    assert value(reg, "sisguard_explain_evaluations_total", variant="pruned", **s) == 50
    assert value(reg, "sisguard_explain_evaluations_total", variant="dense", **r) == 10
    assert value(reg, "sisguard_explain_duration_seconds_sum", **s) == pytest.approx(0.2)
    assert value(reg, "sisguard_agreement_explanations_total", **s) == 1
    assert value(reg, "sisguard_agreement_top1_agree_total", **s) == 1
    assert value(reg, "sisguard_agreement_iou_first_bucket", le="0.4", **s) == 0
    assert value(reg, "sisguard_agreement_iou_first_bucket", le="0.5", **s) == 1
    assert value(reg, "sisguard_agreement_iou_first_bucket", le="0.9", **r) == 0
    assert value(reg, "sisguard_agreement_cross_checked_total", variant="pruned", **s) == 1
    assert value(reg, "sisguard_agreement_cross_sufficient_total", variant="pruned", **s) == 0
    assert value(reg, "sisguard_agreement_cross_sufficient_total", variant="dense", **s) == 1
    assert value(reg, "sisguard_agreement_sis_size_features_sum", variant="pruned", **s) == 3
    assert value(reg, "sisguard_agreement_divergent_total", **s) == 1
    assert value(reg, "sisguard_agreement_divergent_total", **r) == 0
    reason = "pruned_sis_insufficient_for_dense"
    assert value(reg, "sisguard_agreement_divergence_reasons_total", reason=reason, **s) == 1
    assert value(reg, "sisguard_agreement_rank_correlation_count", **s) == 1
    assert value(reg, "sisguard_agreement_rank_correlation_count", **r) == 0  # NaN is not observed


def test_explained_outcome_cache_hits_add_no_evaluations(metrics: Metrics, reg: CollectorRegistry) -> None:
    one_variant = PairExplanation(3, 0.9, sis((1,), 10), None, None)
    metrics.explained("mini", outcome(one_variant), 0.1, "request")
    metrics.explained("mini", outcome(one_variant, cached=True), 0.001, "request")
    r = {"pair": "mini", "source": "request"}
    assert value(reg, "sisguard_explanations_total", **r) == 2
    assert value(reg, "sisguard_explain_evaluations_total", variant="dense", **r) == 10
    assert value(reg, "sisguard_explain_cache_hits_total", pair="mini") == 1
    assert value(reg, "sisguard_agreement_explanations_total", **r) == 0  # one variant: nothing compared


def test_shadow_and_probe_counters(metrics: Metrics, reg: CollectorRegistry) -> None:
    metrics.shadow_observer.sampled_rows("mini", 5)
    metrics.shadow_observer.dropped_rows("mini", "queue_full", 2)
    metrics.shadow_observer.queue_changed("mini", 3)
    metrics.noise_probe_observer.probed("mini", 0.05, 16, 12)
    metrics.noise_probe_observer.probed("mini", 0.05, 16, 16)
    assert value(reg, "sisguard_shadow_sampled_rows_total", pair="mini") == 5
    assert value(reg, "sisguard_shadow_dropped_rows_total", pair="mini", reason="queue_full") == 2
    assert value(reg, "sisguard_shadow_queue_rows", pair="mini") == 3
    assert value(reg, "sisguard_noise_probe_copies_total", pair="mini", level=level_label(0.05)) == 32
    assert value(reg, "sisguard_noise_probe_top1_agree_copies_total", pair="mini", level="0.05") == 28


def test_fresh_registries_are_independent() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Metrics(a).call_finished("Predict", "OK", 0.1)
    Metrics(b)
    assert b.get_sample_value("sisguard_requests_total", {"rpc": "Predict", "code": "OK"}) is None
