"""The data plane: one method per use case, transport-neutral.

Each method checks readiness once (by looking its pair up in the :class:`PairRegistry`), runs
the models through :meth:`Pair.run <sisguard.server.pairs.Pair.run>` (or, for explanations,
:meth:`Pair.score_fn <sisguard.server.pairs.Pair.score_fn>`), and reports to its observer. The
gRPC servicers decode a request, make one call here and encode the result; nothing about gRPC
lives in this package.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from sisguard.server.batching.batcher import FOREGROUND, BatchObserver
from sisguard.server.config import PairConfig, Settings
from sisguard.server.core.explain import ExplainOutcome, ExplainUseCase
from sisguard.server.core.named import Given, batch_of
from sisguard.server.core.registry import PairRegistry
from sisguard.server.core.resolve import ExplainOptions, default_num_features
from sisguard.server.errors import InvalidArgument
from sisguard.server.pairs import VARIANTS, Pair
from sisguard.server.probabilities import VariantOutput, summarize, to_probabilities
from sisguard.server.runtime.model import ModelLoadError, Signature
from sisguard.server.signal.measures import measure_names, resolve_margins
from sisguard.server.signal.verdict import PairSignal, VerdictReport, load_calibration
from sisguard.sis import ProgressEvent

#: who asked for an explanation: a client, or the shadow sampler (docs/monitoring.md)
Source = Literal["request", "shadow"]
PredictVariant = Literal["dense", "pruned", "both"]


@dataclass(frozen=True)
class PredictResult:
    pair: str
    outputs: dict[str, VariantOutput]  # "dense" and/or "pruned"
    top1_agree: np.ndarray | None  # BOTH only
    confidence_gap: np.ndarray | None


@dataclass(frozen=True)
class PairSummary:
    """What ListModels reports of one pair."""

    pair: Pair
    default_num_features: int  # features of the pair's default grouping (0: needs a request's group map)


@dataclass(frozen=True)
class InferRequest:
    """An Open Inference Protocol ModelInfer request, decoded (one input tensor)."""

    model_name: str
    model_version: str
    input_name: str
    x: np.ndarray
    output_names: Sequence[str] = ()
    #: the request's other inputs by name (a several-input model)
    extra_inputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class InferResult:
    model_name: str
    output_name: str
    raw: np.ndarray  # [rows, classes] as the model file produces them


@dataclass(frozen=True)
class ExplainProgress:
    """One BackSelect step of one model, streamed before the result."""

    variant: str
    event: ProgressEvent


class DataPlaneObserver(Protocol):
    """What the data plane reports; the metrics module implements it."""

    def batch_observer(self, pair: str, variant: str) -> BatchObserver: ...

    def predicted(self, pair: str, top1_agree: np.ndarray, confidence_gap: np.ndarray) -> None: ...

    def explained(self, pair: str, outcome: ExplainOutcome, seconds: float, source: Source) -> None: ...


class DataPlane:
    """Every served pair and the use cases on them."""

    def __init__(self, settings: Settings, observer: DataPlaneObserver | None = None) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.observer = observer
        self.registry = PairRegistry(settings, self._batch_observer)
        self.explanations = ExplainUseCase(self.registry, self.limits)
        #: per pair: windows of the divergence measures and the verdict over them (docs/signal.md)
        self.signals: dict[str, PairSignal] = {}
        # Called with (pair, rows) after every successful Predict: shadow explanations and noise
        # probes sample here. Listeners must not block (they sample and enqueue).
        self.predict_listeners: list[Callable[[str, np.ndarray], None]] = []

    def _batch_observer(self, pair: str, variant: str) -> BatchObserver | None:
        """Each batcher's observer, asked of :attr:`observer` when the pairs load."""
        return None if self.observer is None else self.observer.batch_observer(pair, variant)

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Load, verify and warm up every pair (blocking; call before serving)."""
        signals = {pc.name: build_signal(pc) for pc in self.settings.pairs}  # a bad calibration file fails first
        self.registry.load()
        self.signals.update(signals)

    def start(self) -> None:
        """Start the batchers (needs the running event loop) and mark the data plane ready."""
        self.registry.start()

    async def close(self) -> None:
        await self.registry.close()

    @property
    def ready(self) -> bool:
        return self.registry.ready

    @property
    def pairs(self) -> dict[str, Pair]:
        return self.registry.pairs

    # -- use cases ----------------------------------------------------------------------------

    def list_pairs(self) -> list[PairSummary]:
        self.registry.require_ready()
        return [PairSummary(p, default_num_features(p, self.limits)) for p in self.registry]

    async def predict(
        self, pair_name: str, given: Given | None, variant: PredictVariant, deadline: float | None
    ) -> PredictResult:
        """Both (or one) models' probabilities of the rows ``given`` (one tensor, or named tensors of a
        several-input model); ``None``: no rows were sent."""
        pair = self.registry.get(pair_name)
        if given is None and not pair.plan.others:
            raise InvalidArgument(f"inputs missing: expected a tensor [batch, {', '.join(map(str, pair.input_shape))}]")
        x = batch_of(pair, given, self.limits)
        variants = VARIANTS if variant == "both" else (variant,)
        raws = await asyncio.gather(*(pair.run(v, x, deadline=deadline) for v in variants))
        kind = pair.config.output_kind
        outputs = {v: summarize(to_probabilities(raw, kind)) for v, raw in zip(variants, raws, strict=True)}
        agree = gap = None
        if variant == "both":
            dense, pruned = outputs["dense"], outputs["pruned"]
            agree = dense.top1 == pruned.top1
            gap = dense.top1_probability - pruned.probabilities[np.arange(len(dense.top1)), dense.top1]
            if self.observer is not None:
                self.observer.predicted(pair.name, agree, gap)
        for listener in self.predict_listeners if x.dtype.names is None else ():  # features alone only
            listener(pair.name, x)
        return PredictResult(pair.name, outputs, agree, gap)

    def model(self, name: str) -> tuple[Pair, str, Signature]:
        """An Open Inference Protocol model by name (ModelReady, ModelMetadata): pair, variant, signature."""
        pair, variant = self.registry.by_infer_name(name)
        return pair, variant, pair.models[variant].signature

    async def infer(self, request: InferRequest, deadline: float | None) -> InferResult:
        """ModelInfer: one model's raw outputs."""
        self.registry.require_ready()
        pair, variant, sig = self.model(request.model_name)
        if request.model_version not in ("", "1"):
            raise InvalidArgument(f"model {request.model_name} has version 1 only, not {request.model_version!r}")
        for out in request.output_names:
            if out != sig.output_name:
                raise InvalidArgument(f"unknown output {out!r}; model {request.model_name} has {sig.output_name!r}")
        tensors = {request.input_name: request.x, **request.extra_inputs}
        if len(tensors) != 1 + len(request.extra_inputs):
            raise InvalidArgument(f"input {request.input_name} is sent twice")
        x = batch_of(pair, tensors, self.limits)
        raw = await pair.run(variant, x, deadline=deadline)
        return InferResult(request.model_name, sig.output_name, raw)

    async def explain(
        self,
        pair_name: str,
        x: Given,
        opts: ExplainOptions,
        deadline: float | None,
        *,
        priority: int = FOREGROUND,
        progress: Callable[[str, ProgressEvent], None] | None = None,
        source: Source = "request",
        signal: bool = False,
    ) -> ExplainOutcome:
        """Sufficient input subsets of one input for the dense and/or pruned model, and their agreement.

        ``signal=True`` (shadow explanations) adds the control and the verdict's measures."""
        started = time.monotonic()
        outcome = await self.explanations.explain(
            pair_name, x, opts, deadline, priority=priority, progress=progress, signal=signal
        )
        if outcome.signal_values:
            self.signals[outcome.pair].add_values(outcome.signal_values)
        if self.observer is not None:
            self.observer.explained(outcome.pair, outcome, time.monotonic() - started, source)
        return outcome

    async def explain_stream(
        self, pair_name: str, x: Given, opts: ExplainOptions, deadline: float | None
    ) -> AsyncIterator[ExplainProgress | ExplainOutcome]:
        """:meth:`explain` with a progress event per BackSelect step, then the outcome.

        Closing the iterator early stops the explanation at its next step."""
        events: asyncio.Queue[ExplainProgress] = asyncio.Queue()

        def progress(variant: str, ev: ProgressEvent) -> None:
            events.put_nowait(ExplainProgress(variant, ev))

        task = asyncio.ensure_future(self.explain(pair_name, x, opts, deadline, progress=progress))
        try:
            while not task.done() or not events.empty():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            outcome = task.result()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # stopped (its slot freed) before we return
        yield outcome

    async def pair_health(self, pair_name: str) -> VerdictReport:
        """The pair's divergence verdict with its evidence (excess and interval per measure)."""
        pair = self.registry.get(pair_name)
        signal = self.signals[pair.name]
        return await asyncio.to_thread(signal.report, signal.snapshot())  # the bootstrap runs off the loop


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
