"""Prometheus metrics: what the batchers, the gRPC adapters, the core, shadow explanations and noise
probes report, on a registry the app creates (tests pass a fresh one).

The module observes; it never decides. Naming follows Prometheus conventions: one ``sisguard_``
prefix, base units, counters end in ``_total``, explicit buckets per quantity. Labels come only
from small fixed sets: ``pair`` (configured), ``variant`` (dense/pruned), ``rpc`` (method names),
``code`` (gRPC status names), ``reason`` (divergence or drop reasons), ``source``
(request/shadow) and ``level`` (configured noise levels). Series a dashboard or an alert reads are
created at zero when a pair is registered (:meth:`Metrics.set_pair_info`), so a quiet server
answers 0 rather than "no data".

``docs/monitoring.md`` lists every metric with what a healthy value looks like.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from sisguard.server.pairs import VARIANTS, Pair
from sisguard.server.signal.verdict import VERDICTS, VerdictReport
from sisguard.sis import PairExplanation
from sisguard.sis.agreement import DivergenceReason

if TYPE_CHECKING:
    from sisguard.server.core.dataplane import Source
    from sisguard.server.core.explain import ExplainOutcome

PREFIX = "sisguard"
SOURCES = ("request", "shadow")
DIVERGENCE_REASONS: tuple[str, ...] = get_args(DivergenceReason)
SHADOW_DROP_REASONS = ("queue_full", "failed", "shutdown")
PROBE_DROP_REASONS = ("queue_full", "failed", "shutdown")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
EXPLAIN_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_ROWS_BUCKETS = tuple(float(2**i) for i in range(13))  # 1 … 4096
FEATURE_COUNT_BUCKETS = (0.0, *BATCH_ROWS_BUCKETS)  # SIS sizes: 0 (no SIS) … 4096 features
EVALUATION_BUCKETS = tuple(float(4**i) for i in range(1, 12))  # 4 … ~4.2M rows
UNIT_BUCKETS = tuple(round(0.1 * i, 1) for i in range(11))  # [0, 1] in tenths: IoU
SIGNED_UNIT_BUCKETS = tuple(round(-1.0 + 0.2 * i, 1) for i in range(11))  # [-1, 1]: gaps, correlations

RPCS = (
    "ListModels",
    "PairHealth",
    "Predict",
    "Explain",
    "ExplainStream",
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
)


def level_label(level: float) -> str:
    """The ``level`` label of a noise amplitude: the shortest decimal that round-trips (0.05 → "0.05")."""
    return repr(float(level))


@dataclass(frozen=True)
class BatchSeries:
    """The batch metrics of one model, labelled once when its batcher is built (a hot path: every
    BackSelect step of every explanation reports here). Implements the batcher's ``BatchObserver``;
    the model is the one it was made for, whatever name the batcher reports."""

    queue_wait: Any
    compute: Any
    batch_rows: Any
    queue_rows: Any

    def batch_done(self, model: str, rows: int, queue_wait: list[float], compute_seconds: float) -> None:
        for w in queue_wait:
            self.queue_wait.observe(max(w, 0.0))
        self.compute.observe(compute_seconds)
        self.batch_rows.observe(rows)

    def queue_changed(self, model: str, rows: int) -> None:
        self.queue_rows.set(rows)


@dataclass(frozen=True)
class SamplingSeries:
    """Sampled, dropped and queued rows of one kind of background work (``SamplingObserver``)."""

    sampled: Counter
    dropped: Counter
    queue: Gauge

    def sampled_rows(self, pair: str, rows: int) -> None:
        self.sampled.labels(pair).inc(rows)

    def dropped_rows(self, pair: str, reason: str, rows: int) -> None:
        self.dropped.labels(pair, reason).inc(rows)

    def queue_changed(self, pair: str, rows: int) -> None:
        self.queue.labels(pair).set(rows)


@dataclass(frozen=True)
class NoiseProbeSeries(SamplingSeries):
    """Noise-probe metrics (``NoiseProbeObserver``)."""

    copies: Counter
    agree: Counter

    def probed(self, pair: str, level: float, copies: int, agreeing: int) -> None:
        label = level_label(level)
        self.copies.labels(pair, label).inc(copies)
        self.agree.labels(pair, label).inc(agreeing)


@dataclass(frozen=True)
class ShiftProbeSeries(SamplingSeries):
    """Shift-probe metrics (``ShiftProbeObserver``)."""

    copies: Counter
    unstable: Counter
    disagree: Counter

    def probed(
        self, pair: str, shift: str, copies: int, unstable: dict[str, int], disagreeing: dict[str, int]
    ) -> None:
        self.copies.labels(pair, shift).inc(copies)
        for variant, n in unstable.items():
            self.unstable.labels(pair, shift, variant).inc(n)
        for variant, n in disagreeing.items():
            self.disagree.labels(pair, shift, variant).inc(n)


@dataclass(frozen=True)
class MonitoredPair:
    """What the metrics record of a loaded pair at start-up (:meth:`Metrics.register_pairs`)."""

    name: str
    prune_ratio: float
    providers: dict[str, str]  # variant -> execution provider
    queue_capacity: int
    noise_levels: tuple[float, ...]  # () when noise probes are off
    shadow_queue_size: int  # 0 when shadow explanations are off
    shifts: tuple[str, ...]  # () when shift probes are off

    @classmethod
    def of(cls, pair: Pair) -> MonitoredPair:
        cfg = pair.config
        shadow = cfg.shadow
        return cls(
            name=pair.name,
            prune_ratio=pair.prune_ratio,
            providers={v: m.provider for v, m in pair.models.items()},
            queue_capacity=cfg.queue_capacity,
            noise_levels=tuple(shadow.noise_probe.levels) if shadow.noise_probe.sample_rate > 0 else (),
            shadow_queue_size=shadow.queue_size if shadow.sample_rate > 0 else 0,
            shifts=tuple(s.name for s in shadow.shift_probe.shifts) if shadow.shift_probe.sample_rate > 0 else (),
        )


class Metrics:
    """Every sisguard metric on ``registry``.

    Implements the gRPC adapters' ``CallObserver`` and the data plane's ``DataPlaneObserver``
    (which hands each batcher its own :class:`BatchSeries`); :attr:`shadow_observer`,
    :attr:`noise_probe_observer` and :attr:`shift_probe_observer` are the background work's.

    >>> from prometheus_client import CollectorRegistry
    >>> reg = CollectorRegistry()
    >>> m = Metrics(reg)
    >>> m.call_started("Predict"); m.call_finished("Predict", "OK", 0.004)
    >>> reg.get_sample_value("sisguard_requests_total", {"rpc": "Predict", "code": "OK"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry

        def counter(name: str, doc: str, labels: Sequence[str]) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labelnames=labels, registry=r)

        def gauge(name: str, doc: str, labels: Sequence[str]) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labelnames=labels, registry=r)

        def histogram(name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, labelnames=labels, buckets=buckets, registry=r)

        pv, ps = ("pair", "variant"), ("pair", "source")

        # -- serving --------------------------------------------------------------------------
        self.requests = counter("requests", "RPCs finished, by method and gRPC status code.", ("rpc", "code"))
        self.request_failures = counter(
            "request_failures", "RPCs that finished with a status other than OK.", ("rpc", "code")
        )
        self.request_seconds = histogram(
            "request_duration_seconds", "Time from receiving an RPC to its status.", ("rpc",), LATENCY_BUCKETS
        )
        self.in_flight = gauge("requests_in_flight", "RPCs being handled now.", ("rpc",))
        self.queue_wait = histogram(
            "batch_queue_wait_seconds", "Time a submission waited in its model's queue.", pv, LATENCY_BUCKETS
        )
        self.compute = histogram("batch_compute_seconds", "Time one batch ran on its model.", pv, LATENCY_BUCKETS)
        self.batch_rows = histogram("batch_size_rows", "Rows per model run.", pv, BATCH_ROWS_BUCKETS)
        self.queue_rows = gauge("queue_rows", "Rows waiting in the model's batch queue.", pv)
        self.queue_capacity = gauge(
            "queue_capacity_rows", "Rows the model's queue holds before RESOURCE_EXHAUSTED.", pv
        )
        self.model_ready = gauge("model_ready", "1 when the model is loaded, warmed up and serving.", pv)
        self.model_info = Info(f"{PREFIX}_model", "The model's execution provider.", labelnames=pv, registry=r)
        self.prune_ratio = gauge(
            "pair_prune_ratio", "Share of the dense model's parameters that are zero in the pruned one.", ("pair",)
        )

        # -- explanations ---------------------------------------------------------------------
        self.explanations = counter("explanations", "Explanations finished (cache hits included).", ps)
        self.explain_cache_hits = counter(
            "explain_cache_hits", "Explanations answered from the cache of identical requests.", ("pair",)
        )
        self.explain_seconds = histogram(
            "explain_duration_seconds", "Time one explanation took, both variants.", ps, EXPLAIN_SECONDS_BUCKETS
        )
        self.explain_evaluations = counter(
            "explain_evaluations", "Rows scored by the SIS engine (cache hits add none).", ("pair", "variant", "source")
        )
        self.explain_evaluations_hist = histogram(
            "explain_scored_rows",
            "Rows one explanation scored on one variant.",
            ("pair", "variant"),
            EVALUATION_BUCKETS,
        )

        # -- agreement of explained requests (both variants explained) -----------------------
        self.agreement_compared = counter(
            "agreement_explanations", "Explanations that compared the dense and the pruned rationale.", ps
        )
        self.agreement_top1 = counter(
            "agreement_top1_agree", "Compared explanations where dense and pruned chose the same class.", ps
        )
        self.agreement_gap = histogram(
            "agreement_confidence_gap", "f_dense(x) - f_pruned(x) for the explained class.", ps, SIGNED_UNIT_BUCKETS
        )
        self.agreement_iou_first = histogram(
            "agreement_iou_first", "Jaccard overlap of the dense and pruned first SIS.", ps, UNIT_BUCKETS
        )
        self.agreement_iou_union = histogram(
            "agreement_iou_union", "Jaccard overlap of the unions of the SIS collections.", ps, UNIT_BUCKETS
        )
        self.cross_checked = counter(
            "agreement_cross_checked",
            "First SIS of `variant` checked on the other model (both sides had a SIS).",
            ("pair", "variant", "source"),
        )
        self.cross_sufficient = counter(
            "agreement_cross_sufficient",
            "First SIS of `variant` that kept the other model at the threshold.",
            ("pair", "variant", "source"),
        )
        self.rank_correlation = histogram(
            "agreement_rank_correlation",
            "Spearman correlation of the first-round BackSelect removal orders.",
            ps,
            SIGNED_UNIT_BUCKETS,
        )
        self.sis_size = histogram(
            "agreement_sis_size_features",
            "Features in the first SIS of `variant` (0: none found).",
            ("pair", "variant", "source"),
            FEATURE_COUNT_BUCKETS,
        )
        self.divergent = counter("agreement_divergent", "Compared explanations flagged divergent.", ps)
        self.divergent_reasons = counter(
            "agreement_divergence_reasons",
            "Divergent explanations by reason (one may have several).",
            ("pair", "source", "reason"),
        )

        # -- prediction agreement (Predict with variant BOTH) ---------------------------------
        self.predict_rows = counter("prediction_compared_rows", "Predict rows run on both models.", ("pair",))
        self.predict_agree = counter(
            "prediction_top1_agree_rows", "Predict rows where both models chose the same class.", ("pair",)
        )
        self.predict_gap = histogram(
            "prediction_confidence_gap",
            "Per row: p_dense(top1_dense) - p_pruned(top1_dense).",
            ("pair",),
            SIGNED_UNIT_BUCKETS,
        )

        # -- shadow explanations --------------------------------------------------------------
        self.shadow_sampled = counter("shadow_sampled_rows", "Predict rows sampled for shadow explanation.", ("pair",))
        self.shadow_dropped = counter(
            "shadow_dropped_rows", "Sampled rows not explained, by reason.", ("pair", "reason")
        )
        self.shadow_queue = gauge("shadow_queue_rows", "Sampled rows waiting for a shadow explanation.", ("pair",))
        self.shadow_queue_capacity = gauge("shadow_queue_capacity_rows", "Bound of the shadow queue.", ("pair",))

        # -- noise probes ---------------------------------------------------------------------
        self.probe_sampled = counter("noise_probe_sampled_rows", "Predict rows sampled for noise probes.", ("pair",))
        self.probe_dropped = counter(
            "noise_probe_dropped_rows", "Sampled rows not probed, by reason.", ("pair", "reason")
        )
        self.probe_copies = counter(
            "noise_probe_copies", "Noisy copies run on both models, by noise level.", ("pair", "level")
        )
        self.probe_agree = counter(
            "noise_probe_top1_agree_copies", "Noisy copies where both models chose the same class.", ("pair", "level")
        )
        self.probe_queue = gauge("noise_probe_queue_rows", "Sampled rows waiting for a noise probe.", ("pair",))

        # -- shift probes (dense, pruned and control on shifted copies) ------------------------
        self.shift_sampled = counter("shift_probe_sampled_rows", "Predict rows sampled for shift probes.", ("pair",))
        self.shift_dropped = counter(
            "shift_probe_dropped_rows", "Sampled rows not shift-probed, by reason.", ("pair", "reason")
        )
        self.shift_queue = gauge("shift_probe_queue_rows", "Sampled rows waiting for a shift probe.", ("pair",))
        self.shift_copies = counter("shift_probe_copies", "Shifted copies run on every model.", ("pair", "shift"))
        self.shift_unstable = counter(
            "shift_probe_unstable_copies",
            "Shifted copies whose top-1 differs from the same model's top-1 on the clean input.",
            ("pair", "shift", "variant"),
        )
        self.shift_disagree = counter(
            "shift_probe_disagree_copies",
            "Shifted copies where `variant` (pruned or control) chose another class than the dense model.",
            ("pair", "shift", "variant"),
        )

        # -- the verdict (sisguard.server.signal; docs/signal.md) ------------------------------
        self.verdict = gauge(
            "pair_verdict", "1 for the pair's current verdict (healthy, damaged, insufficient_data), 0 for the others.",
            ("pair", "verdict"),
        )
        self.excess = gauge(
            "rationale_excess",
            "Excess of dense-vs-pruned over dense-vs-control per measure: estimate and interval bounds.",
            ("pair", "measure", "bound"),
        )
        self.excess_margin = gauge(
            "rationale_excess_margin", "Margin a deciding measure's lower bound must exceed for 'damaged'.",
            ("pair", "measure"),
        )
        self.verdict_samples = gauge(
            "verdict_samples", "Samples in the window of the deciding measure with the fewest.", ("pair",)
        )
        self.verdict_samples_needed = gauge(
            "verdict_samples_needed", "More samples the verdict needs before it can decide (0 once decided).",
            ("pair",),
        )
        self.measure_samples = gauge(
            "verdict_measure_samples", "Samples in the window per measure.", ("pair", "measure")
        )
        self.has_control = gauge(
            "pair_control", "1 when a live control model runs beside the pair, 0 for an offline calibration or none.",
            ("pair",),
        )
        self.degenerate = counter(
            "agreement_degenerate_explanations",
            "Explanations of `variant` that found no SIS (not_confident, baseline_sufficient); excluded from IoU.",
            ("pair", "source", "variant", "status"),
        )

        # -- the background work's observers ----------------------------------------------------
        self.shadow_observer = SamplingSeries(self.shadow_sampled, self.shadow_dropped, self.shadow_queue)
        self.noise_probe_observer = NoiseProbeSeries(
            self.probe_sampled, self.probe_dropped, self.probe_queue, self.probe_copies, self.probe_agree
        )
        self.shift_probe_observer = ShiftProbeSeries(
            self.shift_sampled,
            self.shift_dropped,
            self.shift_queue,
            self.shift_copies,
            self.shift_unstable,
            self.shift_disagree,
        )

    # -- registration (app start-up) ----------------------------------------------------------

    def set_pair_info(
        self, pair: str, *, prune_ratio: float, noise_levels: Iterable[float] = (), shadow_queue_size: int = 0
    ) -> None:
        """Create the pair's series at zero (so queries see 0, not nothing) and record static facts."""
        self.prune_ratio.labels(pair).set(prune_ratio)
        self.shadow_queue_capacity.labels(pair).set(shadow_queue_size)
        self.shadow_queue.labels(pair)
        self.probe_queue.labels(pair)
        self.predict_rows.labels(pair)
        self.predict_agree.labels(pair)
        self.predict_gap.labels(pair)
        self.shadow_sampled.labels(pair)
        self.probe_sampled.labels(pair)
        for reason in SHADOW_DROP_REASONS:
            self.shadow_dropped.labels(pair, reason)
        for reason in PROBE_DROP_REASONS:
            self.probe_dropped.labels(pair, reason)
        for level in noise_levels:
            self.probe_copies.labels(pair, level_label(level))
            self.probe_agree.labels(pair, level_label(level))
        for source in SOURCES:
            for m in (
                self.explanations,
                self.explain_seconds,
                self.agreement_compared,
                self.agreement_top1,
                self.agreement_gap,
                self.agreement_iou_first,
                self.agreement_iou_union,
                self.rank_correlation,
                self.divergent,
            ):
                m.labels(pair, source)
            for reason in DIVERGENCE_REASONS:
                self.divergent_reasons.labels(pair, source, reason)
            for variant in VARIANTS:
                for m in (self.explain_evaluations, self.cross_checked, self.cross_sufficient, self.sis_size):
                    m.labels(pair, variant, source)
        for variant in VARIANTS:
            self.explain_evaluations_hist.labels(pair, variant)

    def set_model_info(self, pair: str, variant: str, *, provider: str, queue_capacity: int) -> None:
        self.model_info.labels(pair, variant).info({"provider": provider})
        self.queue_capacity.labels(pair, variant).set(queue_capacity)
        self.queue_rows.labels(pair, variant)
        self.model_ready.labels(pair, variant)
        for m in (self.queue_wait, self.compute, self.batch_rows):
            m.labels(pair, variant)

    def set_ready(self, pair: str, variant: str, ready: bool) -> None:
        self.model_ready.labels(pair, variant).set(1.0 if ready else 0.0)

    def set_rpcs(self, rpcs: Iterable[str] = RPCS) -> None:
        """Create per-RPC series at zero (OK counts, latency, in-flight)."""
        for rpc in rpcs:
            self.requests.labels(rpc, "OK")
            self.request_seconds.labels(rpc)
            self.in_flight.labels(rpc)

    # -- CallObserver -------------------------------------------------------------------------

    def call_started(self, rpc: str) -> None:
        self.in_flight.labels(rpc).inc()

    def call_finished(self, rpc: str, code: str, seconds: float) -> None:
        self.in_flight.labels(rpc).dec()
        self.requests.labels(rpc, code).inc()
        if code != "OK":
            self.request_failures.labels(rpc, code).inc()
        self.request_seconds.labels(rpc).observe(seconds)

    # -- DataPlaneObserver ----------------------------------------------------------------------

    def batch_observer(self, pair: str, variant: str) -> BatchSeries:
        """The observer of one model's batcher, its series labelled once."""
        labels = (pair, variant)
        return BatchSeries(
            self.queue_wait.labels(*labels),
            self.compute.labels(*labels),
            self.batch_rows.labels(*labels),
            self.queue_rows.labels(*labels),
        )

    def predicted(self, pair: str, top1_agree: np.ndarray, confidence_gap: np.ndarray) -> None:
        agree = np.asarray(top1_agree, dtype=bool)
        self.predict_rows.labels(pair).inc(int(agree.size))
        self.predict_agree.labels(pair).inc(int(agree.sum()))
        gap = self.predict_gap.labels(pair)
        for g in np.asarray(confidence_gap, dtype=np.float64).ravel():
            if math.isfinite(g):
                gap.observe(float(g))

    def explained(self, pair: str, outcome: ExplainOutcome, seconds: float, source: Source) -> None:
        """One finished explanation; a cache hit (``outcome.cached``) counts, its evaluations do not."""
        explanation = outcome.explanation
        self.explanations.labels(pair, source).inc()
        self.explain_seconds.labels(pair, source).observe(seconds)
        if outcome.cached:
            self.explain_cache_hits.labels(pair).inc()
        else:
            for variant, result in (("dense", explanation.dense), ("pruned", explanation.pruned)):
                if result is not None:
                    self.explain_evaluations.labels(pair, variant, source).inc(result.evaluations)
                    self.explain_evaluations_hist.labels(pair, variant).observe(result.evaluations)
        a = explanation.agreement
        if a is None:
            return
        self.agreement_compared.labels(pair, source).inc()
        if a.top1_agree:
            self.agreement_top1.labels(pair, source).inc()
        if math.isfinite(a.confidence_gap):
            self.agreement_gap.labels(pair, source).observe(a.confidence_gap)
        for variant, r in (("dense", explanation.dense), ("pruned", explanation.pruned)):
            if r is not None and r.status in _DEGENERATE:
                self.degenerate.labels(pair, source, variant, r.status).inc()
        if _both_found(explanation):  # degenerate explanations are no evidence of agreement
            self.agreement_iou_first.labels(pair, source).observe(a.iou_first)
            self.agreement_iou_union.labels(pair, source).observe(a.iou_union)
        for variant, sufficient in (
            ("dense", a.dense_sis_sufficient_for_pruned),
            ("pruned", a.pruned_sis_sufficient_for_dense),
        ):
            if sufficient is not None:
                self.cross_checked.labels(pair, variant, source).inc()
                if sufficient:
                    self.cross_sufficient.labels(pair, variant, source).inc()
        if math.isfinite(a.rank_correlation):
            self.rank_correlation.labels(pair, source).observe(a.rank_correlation)
        self.sis_size.labels(pair, "dense", source).observe(a.dense_sis_size)
        self.sis_size.labels(pair, "pruned", source).observe(a.pruned_sis_size)
        if a.divergent:
            self.divergent.labels(pair, source).inc()
            for reason in a.reasons:
                if reason in DIVERGENCE_REASONS:
                    self.divergent_reasons.labels(pair, source, reason).inc()

    # -- verdict ------------------------------------------------------------------------------

    def verdict_updated(self, report: VerdictReport) -> None:
        """Export a ``VerdictReport``: the 0/1 verdict gauges, excess bounds and sample counts."""
        pair = report.pair
        for v in VERDICTS:
            self.verdict.labels(pair, v).set(1.0 if report.verdict == v else 0.0)
        self.verdict_samples.labels(pair).set(report.samples)
        self.verdict_samples_needed.labels(pair).set(report.samples_needed)
        for e in report.measures:
            for bound, value in (("estimate", e.estimate), ("lower", e.lower), ("upper", e.upper)):
                self.excess.labels(pair, e.name, bound).set(value)
            self.measure_samples.labels(pair, e.name).set(e.samples)
            if e.deciding:
                self.excess_margin.labels(pair, e.name).set(e.margin)

    def register_pairs(self, pairs: Iterable[MonitoredPair]) -> None:
        """Record the loaded pairs: static facts and zero series."""
        self.set_rpcs()
        for p in pairs:
            self.set_pair_info(
                p.name,
                prune_ratio=p.prune_ratio,
                noise_levels=p.noise_levels,
                shadow_queue_size=p.shadow_queue_size,
            )
            for variant, provider in p.providers.items():
                self.set_model_info(p.name, variant, provider=provider, queue_capacity=p.queue_capacity)
            self.has_control.labels(p.name).set(1.0 if "control" in p.providers else 0.0)
            self.shift_sampled.labels(p.name)
            self.shift_queue.labels(p.name)
            for reason in PROBE_DROP_REASONS:
                self.shift_dropped.labels(p.name, reason)
            for shift in p.shifts:
                self.shift_copies.labels(p.name, shift)
                for variant in p.providers:
                    self.shift_unstable.labels(p.name, shift, variant)
                    if variant != "dense":
                        self.shift_disagree.labels(p.name, shift, variant)
            for v in VERDICTS:  # insufficient_data until the first report
                self.verdict.labels(p.name, v).set(1.0 if v == "insufficient_data" else 0.0)
            self.verdict_samples.labels(p.name)
            self.verdict_samples_needed.labels(p.name)

    def set_all_ready(self, pairs: Iterable[MonitoredPair], ready: bool) -> None:
        for p in pairs:
            for variant in p.providers:
                self.set_ready(p.name, variant, ready)


def _both_found(explanation: PairExplanation) -> bool:
    d, p = explanation.dense, explanation.pruned
    return d is not None and p is not None and d.status not in _DEGENERATE and p.status not in _DEGENERATE


_DEGENERATE = ("not_confident", "baseline_sufficient")


class MetricsServer:
    """``/metrics`` of one registry over HTTP/1.1 on its own port, served on the event loop.

    No thread per connection (prometheus_client's server starts one for every connection, so idle
    connections pile up threads): at most ``max_connections`` are open at once — a new one beyond
    that closes the oldest, so idle connections cannot lock a scraper out —, a connection idle for
    ``idle_seconds`` is closed, and request heads over 16 KiB are refused. ``GET /metrics`` (or
    ``/``) answers the text exposition format; keep-alive is honoured.
    """

    HEAD_LIMIT = 16 * 1024

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        max_connections: int = 64,
        idle_seconds: float = 10.0,
    ) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds
        self.port: int = port
        self.open_connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: dict[asyncio.StreamWriter, None] = {}  # oldest first

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.requested_port, limit=self.HEAD_LIMIT, reuse_address=True
            )
        except OSError as exc:
            raise OSError(
                f"cannot bind metrics address {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from exc
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.open_connections >= self.max_connections and self._writers:
            oldest = next(iter(self._writers))
            self._writers.pop(oldest)
            oldest.close()  # its handler sees EOF and returns
            self.open_connections -= 1
        self.open_connections += 1
        self._writers[writer] = None
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_seconds)
                except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, _, rest = head.decode("latin-1").partition("\r\n")
                parts = request_line.split()
                method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
                path = target.split("?", 1)[0]
                body, status, ctype = b"", "404 Not Found", "text/plain; charset=utf-8"
                if method not in ("GET", "HEAD"):
                    status, body = "405 Method Not Allowed", b"only GET\n"
                elif path in ("/metrics", "/"):
                    status, body, ctype = "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST
                else:
                    body = b"not found: try /metrics\n"
                close = "connection: close" in rest.lower() or not request_line.endswith("HTTP/1.1")
                headers = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                    f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
                )
                writer.write(headers.encode("latin-1") + (body if method != "HEAD" else b""))
                try:
                    await asyncio.wait_for(writer.drain(), self.idle_seconds)
                except (TimeoutError, ConnectionError):
                    return
                if close:
                    return
        finally:
            if self._writers.pop(writer, 0) is None:  # not evicted: still counted
                self.open_connections -= 1
            writer.close()
