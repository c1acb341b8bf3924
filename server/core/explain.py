"""The Explain use case: one input, the SIS engine on the pair's models, their agreement.

Resolve the request against the pair (:func:`~sisguard.server.core.resolve.resolve`), answer
identical client requests from a small cache, score the full input once per model (its top-1 and,
for a relative threshold, ``f_dense(x)``), run the engine on the requested models concurrently
through :meth:`Pair.score_fn <sisguard.server.pairs.Pair.score_fn>` and, for shadow explanations
(``signal=True``), add the control and the verdict's explanation measures.

The engine itself is :mod:`sisguard.sis`; this module only feeds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from sisguard.server.batching.batcher import FOREGROUND
from sisguard.server.config import LimitsConfig
from sisguard.server.core.named import Given
from sisguard.server.core.registry import PairRegistry
from sisguard.server.core.resolve import ExplainOptions, Resolved, resolve
from sisguard.server.errors import DeadlineExceeded, ResourceExhausted
from sisguard.server.pairs import Pair
from sisguard.server.signal.measures import explanation_measures
from sisguard.sis import PairExplanation, ProgressEvent, ScoreFn, explain_pair, score_along_path

Progress = Callable[[str, ProgressEvent], None]


@dataclass(frozen=True)
class ExplainOutcome:
    pair: str
    explanation: PairExplanation
    groups: np.ndarray  # int32, the input's shape
    num_features: int
    top1: dict[str, int]
    full_scores: dict[str, float]
    cached: bool = False
    #: ``signal=True`` only: explanation measure → {"pruned": v, "control": v} (see sisguard.server.signal)
    signal_values: dict[str, dict[str, float]] | None = None


class ExplainCache:
    """A small LRU of finished explanations keyed by pair, input bytes and options (size 0: off)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, ExplainOutcome] = OrderedDict()

    def get(self, key: str) -> ExplainOutcome | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: str, value: ExplainOutcome) -> None:
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    @staticmethod
    def key(pair: str, x: np.ndarray, opts: ExplainOptions, extras: dict[str, np.ndarray] | None = None) -> str:
        h = hashlib.sha256()
        h.update(pair.encode())
        h.update(repr((x.dtype.str, x.shape)).encode())
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(repr(opts).encode())
        for name, value in sorted((extras or {}).items()):
            h.update(name.encode())
            h.update(repr((value.dtype.str, value.shape)).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        for extra in (opts.group_map, opts.baseline_tensor):
            if extra is not None:
                a = np.ascontiguousarray(extra)
                h.update(repr((a.dtype.str, a.shape)).encode())
                h.update(a.tobytes())
        return h.hexdigest()


class ExplainUseCase:
    """Explanations of the registry's pairs within the server's limits."""

    def __init__(self, registry: PairRegistry, limits: LimitsConfig) -> None:
        self.registry = registry
        self.limits = limits
        self._running = 0
        self._cache = ExplainCache(limits.explain_cache_size)

    @property
    def running(self) -> int:
        """Client explanations in progress (background ones are not counted)."""
        return self._running

    async def explain(
        self,
        pair_name: str,
        x: Given,
        opts: ExplainOptions,
        deadline: float | None,
        *,
        priority: int = FOREGROUND,
        progress: Progress | None = None,
        signal: bool = False,
    ) -> ExplainOutcome:
        """Explain one input. ``signal=True`` (shadow explanations) also explains the pair's control
        and scores both other models along the dense BackSelect path, for the verdict's measures."""
        pair = self.registry.get(pair_name)
        r = resolve(pair, x, opts, self.limits)
        # The cache and the concurrency limit are for client requests; background work (shadow
        # explanations) has its own rate budget and must not take client slots or fill the cache.
        foreground = priority == FOREGROUND
        key = ExplainCache.key(pair.name, r.x, opts, r.extras) if foreground else ""
        hit = self._cache.get(key) if foreground else None
        if hit is not None:
            return replace(hit, cached=True)
        if foreground and self._running >= self.limits.max_concurrent_explanations:
            raise ResourceExhausted(
                f"{self._running} explanations are running; the server allows "
                f"{self.limits.max_concurrent_explanations} at once, retry later"
            )
        self._running += foreground
        try:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded("deadline passed before the explanation started")
            async with asyncio.timeout(remaining):
                outcome = await _Run(pair, r, deadline, priority).explain(progress, signal, opts.variants == "both")
        except TimeoutError:
            raise DeadlineExceeded("deadline passed during the explanation; it was stopped") from None
        finally:
            self._running -= foreground
        if foreground:
            self._cache.put(key, outcome)
        return outcome


@dataclass(frozen=True)
class _Run:
    """One explanation of a resolved request."""

    pair: Pair
    r: Resolved
    deadline: float | None
    priority: int

    def score_fn(self, variant: str, target: int) -> ScoreFn:
        return self.pair.score_fn(
            variant, target, deadline=self.deadline, priority=self.priority, extras=self.r.extras or None
        )

    async def explain(self, progress: Progress | None, signal: bool, both: bool) -> ExplainOutcome:
        pair, r = self.pair, self.r
        with_control = signal and pair.has_control and both
        variants = ("dense", "pruned", "control") if with_control else ("dense", "pruned")
        rows = r.x[None] if not r.extras else pair.prepare_fn(r.extras)(r.x[None])
        full = await asyncio.gather(
            *(pair.probabilities(v, rows, deadline=self.deadline, priority=self.priority) for v in variants)
        )
        probs = {v: p[0] for v, p in zip(variants, full, strict=True)}
        top1 = {v: int(np.argmax(p)) for v, p in probs.items()}
        target = top1["dense"] if r.target is None else r.target
        explanation = await explain_pair(
            r.x,
            r.baseline,
            r.groups,
            dense_score=self.score_fn("dense", target) if "dense" in r.explained else None,
            pruned_score=self.score_fn("pruned", target) if "pruned" in r.explained else None,
            params=r.params(r.tau(float(probs["dense"][target]))),
            dense_top1=top1["dense"],
            pruned_top1=top1["pruned"],
            thresholds=r.thresholds,
            progress=progress,
            target=target,
            control_score=self.score_fn("control", target) if with_control else None,
            control_top1=top1.get("control"),
            full_scores={v: float(p[target]) for v, p in probs.items()},  # f(x) is scored once per model
        )
        values = await self.signal_values(explanation, target) if signal and both else None
        return ExplainOutcome(
            pair=pair.name,
            explanation=explanation,
            groups=r.groups,
            num_features=r.num_features,
            top1={v: top1[v] for v in ("dense", "pruned")},
            full_scores={v: float(probs[v][target]) for v in ("dense", "pruned")},
            signal_values=values,
        )

    async def signal_values(self, e: PairExplanation, target: int) -> dict[str, dict[str, float]]:
        """The explanation measures of the pruned model and the control against the dense model."""
        dense = e.dense
        if dense is None:
            return {}
        r = self.r
        sides = (("pruned", e.pruned, e.agreement), ("control", e.control, e.control_agreement))
        others = [(v, res, a) for v, res, a in sides if res is not None and a is not None]
        order = dense.backselect[0].order if dense.backselect else ()

        async def path(variant: str) -> np.ndarray | None:
            if not order:
                return None
            fn = self.score_fn(variant, target)
            return await score_along_path(fn, r.x, r.baseline, r.groups, order, self.pair.config.max_batch_size)

        paths = await asyncio.gather(*(path(v) for v, _, _ in others))
        values: dict[str, dict[str, float]] = {}
        for (variant, result, agreement), on_path in zip(others, paths, strict=True):
            m = explanation_measures(
                dense,
                result,
                threshold=e.threshold,
                other_on_dense_sis=None if np.isnan(agreement.dense_sis_score_on_pruned)
                else agreement.dense_sis_score_on_pruned,
                dense_on_other_sis=None if np.isnan(agreement.pruned_sis_score_on_dense)
                else agreement.pruned_sis_score_on_dense,
                other_on_dense_path=on_path,
            )
            for name, value in m.items():
                values.setdefault(name, {})[variant] = value
        return values
