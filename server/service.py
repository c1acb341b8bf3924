"""The core service: transport-neutral. Validates requests, runs them through the batchers,
computes agreement between the dense and the pruned model, and reports to its observer.

The gRPC adapters translate protobuf to the types used here and the errors raised here to
status codes; nothing about gRPC lives in this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sisguard.server.batching.batcher import FOREGROUND, BatchObserver
from sisguard.server.config import PairConfig, Settings
from sisguard.server.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from sisguard.server.explaining import Explainer, ExplainOptions, ExplainOutcome
from sisguard.server.outputs import VariantOutput, summarize, to_probabilities
from sisguard.server.pairs import ALL_VARIANTS, VARIANTS, Pair
from sisguard.server.runtime.model import ModelLoadError
from sisguard.server.runtime.providers import choose_providers
from sisguard.server.signal.measures import measure_names, resolve_margins
from sisguard.server.signal.verdict import PairSignal, VerdictReport, load_calibration
from sisguard.sis import ProgressEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictResult:
    pair: str
    outputs: dict[str, VariantOutput]  # "dense" and/or "pruned"
    top1_agree: np.ndarray | None  # BOTH only
    confidence_gap: np.ndarray | None


class ServiceObserver(BatchObserver, Protocol):
    """What the core reports besides batches; the metrics module implements it."""

    def predicted(self, pair: str, top1_agree: np.ndarray, confidence_gap: np.ndarray) -> None: ...

    def explained(self, pair: str, outcome: ExplainOutcome, seconds: float, *, source: str = "request") -> None: ...


class Service:
    """Every served pair and the operations on them."""

    def __init__(self, settings: Settings, observer: ServiceObserver | None = None) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.observer = observer
        self.pairs: dict[str, Pair] = {}
        #: per pair: windows of the divergence measures and the verdict over them (docs/signal.md)
        self.signals: dict[str, PairSignal] = {}
        self.ready = False
        self.explainer = Explainer(self)
        # Called with (pair, rows) after every successful Predict: shadow explanations and noise
        # probes sample here. Listeners must not block (they sample and enqueue).
        self.predict_listeners: list[Callable[[str, np.ndarray], None]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Load, verify and warm up every model (blocking; call before serving).

        Raises ModelLoadError naming the file and the problem.
        """
        if not self.settings.pairs:
            raise ModelLoadError("no pairs configured")
        choice = choose_providers(list(self.settings.runtime.providers), self.settings.runtime.device_id)
        for pc in self.settings.pairs:
            pair = Pair(pc, self.settings.runtime, choice, self.observer)
            pair.warm_up()
            self.pairs[pc.name] = pair
            self.signals[pc.name] = build_signal(pc)
        reasons = {m.cuda_reason for p in self.pairs.values() for m in p.models.values() if m.cuda_reason}
        if reasons:
            log.warning("no usable GPU: %s; running on CPU", "; ".join(sorted(reasons)))
        for p in self.pairs.values():
            log.info(
                "pair %s ready: dense %s on %s, pruned %s on %s, prune ratio %.3f, %s",
                p.name,
                p.config.dense.name,
                p.models["dense"].provider,
                p.config.pruned.name,
                p.models["pruned"].provider,
                p.prune_ratio,
                f"control {p.config.control.name}" if p.config.control is not None
                else ("offline calibration" if p.config.calibration_file is not None else "no control"),
            )

    def start(self) -> None:
        """Start the batchers (needs the running event loop) and mark the service ready."""
        for p in self.pairs.values():
            p.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        for p in self.pairs.values():
            await p.close()

    # -- lookups and validation -------------------------------------------------------------

    def pair(self, name: str) -> Pair:
        self._require_ready()  # while loading (or after close) no pair can be served
        try:
            return self.pairs[name]
        except KeyError:
            raise NotFound(f"unknown pair {name!r}; available: {', '.join(sorted(self.pairs)) or '(none)'}") from None

    def _require_ready(self) -> None:
        if not self.ready:
            raise Unavailable("server is not ready (starting or shutting down)")

    def check_rows(self, pair: Pair, x: np.ndarray) -> None:
        """A batch ``[rows, *input_shape]`` of the pair's dtype, finite, within the limits."""
        expected = pair.input_shape
        if x.dtype != pair.input_dtype:
            raise InvalidArgument(f"input dtype {x.dtype} does not match pair {pair.name}: expected {pair.input_dtype}")
        if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
            raise InvalidArgument(
                f"input shape {list(x.shape)} does not match pair {pair.name}: "
                f"expected [batch, {', '.join(map(str, expected))}]"
            )
        if x.shape[0] == 0:
            raise InvalidArgument("empty batch: send at least one row")
        if x.shape[0] > self.limits.max_batch_rows:
            raise ResourceExhausted(
                f"batch of {x.shape[0]} rows exceeds the server limit of {self.limits.max_batch_rows} rows"
            )
        check_finite(x)

    def check_elements(self, count: int) -> None:
        if count > self.limits.max_elements:
            raise ResourceExhausted(f"request holds {count} elements, the server limit is {self.limits.max_elements}")

    # -- operations -------------------------------------------------------------------------

    async def run_model(self, pair: Pair, variant: str, x: np.ndarray, deadline: float | None) -> np.ndarray:
        """Raw outputs ``[rows, classes]`` of one model through its batcher."""
        self._require_ready()
        return await pair.batchers[variant].submit(x, deadline=deadline)

    async def predict(self, pair_name: str, x: np.ndarray, variant: str, deadline: float | None) -> PredictResult:
        pair = self.pair(pair_name)
        self.check_rows(pair, x)
        variants = VARIANTS if variant == "both" else (variant,)
        raws = await asyncio.gather(*(self.run_model(pair, v, x, deadline) for v in variants))
        kind = pair.config.output_kind
        outputs = {v: summarize(to_probabilities(raw, kind)) for v, raw in zip(variants, raws, strict=True)}
        agree = gap = None
        if variant == "both":
            dense, pruned = outputs["dense"], outputs["pruned"]
            agree = dense.top1 == pruned.top1
            gap = dense.top1_probability - pruned.probabilities[np.arange(len(dense.top1)), dense.top1]
            if self.observer is not None:
                self.observer.predicted(pair.name, agree, gap)
        for listener in self.predict_listeners:
            listener(pair.name, x)
        return PredictResult(pair.name, outputs, agree, gap)

    async def explain(
        self,
        pair_name: str,
        x: np.ndarray,
        opts: ExplainOptions,
        deadline: float | None,
        *,
        priority: int = FOREGROUND,
        progress: Callable[[str, ProgressEvent], None] | None = None,
        source: str = "request",
        signal: bool = False,
    ) -> ExplainOutcome:
        """Sufficient input subsets of one input for the dense and/or pruned model, and their agreement.

        ``signal=True`` (shadow explanations) adds the control and the verdict's measures."""
        self._require_ready()
        started = time.monotonic()
        outcome = await self.explainer.explain(
            pair_name, x, opts, deadline, priority=priority, progress=progress, signal=signal
        )
        if outcome.signal_values:
            self.signals[outcome.pair].add_values(outcome.signal_values)
        if self.observer is not None:
            self.observer.explained(outcome.pair, outcome, time.monotonic() - started, source=source)
        return outcome

    async def pair_health(self, pair_name: str) -> VerdictReport:
        """The pair's divergence verdict with its evidence (excess and interval per measure)."""
        pair = self.pair(pair_name)
        signal = self.signals[pair.name]
        return await asyncio.to_thread(signal.report, signal.snapshot())  # the bootstrap runs off the loop

    def model_by_infer_name(self, name: str) -> tuple[Pair, str]:
        """Resolve an Open Inference Protocol model name ``<pair>.<dense|pruned|control>``."""
        pair_name, _, variant = name.rpartition(".")
        if variant in ALL_VARIANTS and pair_name in self.pairs and variant in self.pairs[pair_name].models:
            return self.pairs[pair_name], variant
        known = [p.infer_name(v) for p in self.pairs.values() for v in p.variants]
        raise NotFound(f"unknown model {name!r}; available: {', '.join(known)}")


def build_signal(pc: PairConfig) -> PairSignal:
    """The verdict state of one configured pair; a bad calibration file raises ModelLoadError naming it."""
    shifts = [s.name for s in pc.shadow.shift_probe.shifts]
    known = measure_names(shifts)
    calibration = None
    if pc.control is None and pc.calibration_file is not None:
        try:
            calibration = load_calibration(str(pc.calibration_file))
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from None
    v = pc.verdict
    return PairSignal(
        pc.name,
        margins=resolve_margins(v.margins, known),
        known=known,
        has_control=pc.control is not None,
        calibration=calibration,
        window=v.window,
        max_age_seconds=v.max_age_seconds,
        min_samples=v.min_samples,
        confidence=v.confidence,
        bootstrap=v.bootstrap,
    )


def check_finite(x: np.ndarray) -> None:
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise InvalidArgument(
                f"input holds {int(bad.sum())} NaN or Inf values (first at index {list(map(int, first))}); "
                "all values must be finite"
            )
