"""Explain requests in the core: resolve the request against the pair's defaults and the server's
limits, build features and baseline, score through the same batchers as Predict, run the SIS
engine on both models concurrently, and cache identical requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from sisguard.server.batching.batcher import FOREGROUND
from sisguard.server.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted
from sisguard.server.outputs import to_probabilities
from sisguard.server.pairs import Pair
from sisguard.server.signal.measures import explanation_measures
from sisguard.server.signal.shifts import blur, shift_applies
from sisguard.sis import (
    DivergenceThresholds,
    PairExplanation,
    ProgressEvent,
    ScoreFn,
    SISParams,
    constant_baseline,
    element_groups,
    explain_pair,
    explicit_groups,
    num_features,
    patch_groups,
    pixel_groups,
    score_along_path,
    tensor_baseline,
    zero_baseline,
)

if TYPE_CHECKING:
    from sisguard.server.service import Service

Variants = Literal["dense", "pruned", "both"]


@dataclass(frozen=True)
class ExplainOptions:
    """One Explain request; ``None`` takes the pair's default."""

    target: int | None = None
    threshold: float | None = None
    threshold_relative: bool = False
    features: Literal["element", "pixel", "patch", "explicit"] | None = None
    patch: tuple[int, int] | None = None
    group_map: np.ndarray | None = field(default=None, compare=False, repr=False)
    baseline: Literal["zeros", "mean", "constant", "custom", "blur"] | None = None
    baseline_constant: float = 0.0
    baseline_tensor: np.ndarray | None = field(default=None, compare=False, repr=False)
    max_sis: int | None = None
    variants: Variants = "both"
    batch_k: int = 1
    max_evaluations: int | None = None
    allow_partial: bool = False


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


class _Cache:
    """A small LRU of finished explanations keyed by pair, input bytes and options."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, ExplainOutcome] = OrderedDict()

    def get(self, key: str) -> ExplainOutcome | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: str, value: ExplainOutcome) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _cache_key(pair: str, x: np.ndarray, opts: ExplainOptions) -> str:
    h = hashlib.sha256()
    h.update(pair.encode())
    h.update(repr((x.dtype.str, x.shape)).encode())
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(repr(opts).encode())
    for extra in (opts.group_map, opts.baseline_tensor):
        if extra is not None:
            a = np.ascontiguousarray(extra)
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()


class Explainer:
    """Explain operations of a :class:`Service`."""

    def __init__(self, service: Service, cache_size: int = 256) -> None:
        self.service = service
        self.limits = service.limits
        self._running = 0
        self._cache = _Cache(cache_size)
        self._means: dict[str, np.ndarray] = {}

    # -- request resolution -----------------------------------------------------------------

    def default_num_features(self, pair: Pair) -> int:
        """Features of the pair's default grouping (0 when it cannot be built without a request)."""
        try:
            return num_features(self.groups(pair, ExplainOptions()))
        except (InvalidArgument, OSError, ValueError):
            return 0

    def one_input(self, pair: Pair, x: np.ndarray) -> np.ndarray:
        shape = pair.input_shape
        if tuple(x.shape) == (1, *shape):
            x = x[0]
        if tuple(x.shape) != shape:
            raise InvalidArgument(
                f"input shape {list(x.shape)} does not match pair {pair.name}: expected one input "
                f"[{', '.join(map(str, shape))}] (or [1, {', '.join(map(str, shape))}])"
            )
        self.service.check_rows(pair, x[None])
        return x

    def groups(self, pair: Pair, opts: ExplainOptions) -> np.ndarray:
        cfg = pair.config.explain
        kind = opts.features or cfg.features
        shape = pair.input_shape
        cap = self.limits.max_features
        if kind == "element":
            return element_groups(shape, max_features=cap)
        if kind == "pixel":
            return pixel_groups(shape, max_features=cap)
        if kind == "patch":
            ph, pw = opts.patch or cfg.patch
            if ph < 1 or pw < 1:
                raise InvalidArgument(f"patch size must be at least 1x1, got {ph}x{pw}")
            if len(shape) >= 2 and (ph > shape[-2] or pw > shape[-1]):
                raise InvalidArgument(
                    f"patch {ph}x{pw} is larger than the input's {shape[-2]}x{shape[-1]} pixels: expected at most "
                    f"{shape[-2]}x{shape[-1]} (a larger patch would make the whole input one feature)"
                )
            return patch_groups(shape, ph, pw, max_features=cap)
        group_map = opts.group_map
        if group_map is None:
            if cfg.group_map_file is None:
                raise InvalidArgument("features=explicit needs a group_map (none sent, none configured)")
            group_map = np.load(cfg.group_map_file)
        return explicit_groups(group_map, shape, max_features=cap)

    def baseline(self, pair: Pair, opts: ExplainOptions, x: np.ndarray | None = None) -> np.ndarray:
        cfg = pair.config.explain
        kind = opts.baseline or cfg.baseline
        shape, dtype = pair.input_shape, pair.input_dtype
        if kind == "blur":
            if not shift_applies("blur", shape) or not np.issubdtype(dtype, np.floating):
                raise InvalidArgument(
                    f"baseline=blur needs floating-point inputs with two spatial axes; pair {pair.name} takes "
                    f"{dtype} {list(shape)}"
                )
            if x is None:
                raise InvalidArgument("baseline=blur is computed from the input, and none was given")
            return blur(x, cfg.baseline_blur_sigma).astype(dtype)
        if kind == "zeros":
            return zero_baseline(shape, dtype)
        if kind == "constant":
            value = opts.baseline_constant if opts.baseline == "constant" else cfg.baseline_constant
            if np.issubdtype(dtype, np.integer) and (
                value != int(value) or not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max
            ):
                raise InvalidArgument(
                    f"baseline constant {value:g} does not fit pair {pair.name}'s {np.dtype(dtype).name} inputs: "
                    "expected a whole number in the dtype's range"
                )
            return constant_baseline(shape, value, dtype)
        if kind == "custom":
            if opts.baseline_tensor is None:
                raise InvalidArgument("baseline=CUSTOM needs baseline_tensor")
            return tensor_baseline(opts.baseline_tensor, shape, dtype)
        if cfg.mean_file is None:
            raise InvalidArgument(f"pair {pair.name} has no mean baseline configured (explain.mean_file)")
        if pair.name not in self._means:
            self._means[pair.name] = tensor_baseline(np.load(cfg.mean_file), shape, dtype)
        return self._means[pair.name]

    def check_early(self, pair: Pair, opts: ExplainOptions) -> None:
        """What can be refused before any model runs: max_sis, the budget, batch_k, target, and a
        threshold that no probability can meet (or every one meets) on a pair whose scores are
        probabilities."""
        cfg = pair.config.explain
        max_sis = opts.max_sis or cfg.max_sis
        if not 1 <= max_sis <= self.limits.max_sis:
            raise InvalidArgument(f"max_sis must be between 1 and {self.limits.max_sis}, got {max_sis}")
        budget = opts.max_evaluations or cfg.max_evaluations
        if budget < 0:
            raise InvalidArgument(f"max_evaluations must be positive, got {budget}")
        if opts.batch_k < 1:
            raise InvalidArgument(f"batch_k must be at least 1, got {opts.batch_k}")
        if opts.target is not None and not 0 <= opts.target < pair.num_outputs:
            raise InvalidArgument(
                f"target {opts.target} is out of range: pair {pair.name} has {pair.num_outputs} outputs"
            )
        if opts.threshold is not None and pair.config.output_kind in ("logits", "probabilities"):
            low_ok = opts.threshold > 0 if opts.threshold_relative else opts.threshold >= 0
            if not (low_ok and opts.threshold <= 1):
                what = "relative threshold r (tau = r * f(x))" if opts.threshold_relative else "threshold tau"
                interval = "(0, 1]" if opts.threshold_relative else "[0, 1]"
                raise InvalidArgument(
                    f"{what} {opts.threshold:g} is outside {interval}: pair {pair.name} scores are probabilities"
                )

    def params(self, pair: Pair, opts: ExplainOptions, threshold: float) -> SISParams:
        """The engine's parameters of a request :meth:`check_early` has accepted."""
        cfg = pair.config.explain
        max_sis = opts.max_sis or cfg.max_sis
        budget = opts.max_evaluations or cfg.max_evaluations
        return SISParams(
            threshold=threshold,
            max_sis=max_sis,
            batch_k=opts.batch_k,
            max_evaluations=min(budget, self.limits.max_evaluations),
            allow_partial=opts.allow_partial,
            chunk_size=pair.config.max_batch_size,
        )

    # -- the operation ----------------------------------------------------------------------

    def _score_fn(self, pair: Pair, variant: str, target: int, deadline: float | None, priority: int) -> ScoreFn:
        batcher = pair.batchers[variant]
        kind = pair.config.output_kind

        async def score(batch: np.ndarray) -> np.ndarray:
            raw = await batcher.submit(batch, deadline=deadline, priority=priority)
            return to_probabilities(raw, kind)[:, target].astype(np.float64)

        return score

    async def explain(
        self,
        pair_name: str,
        x: np.ndarray,
        opts: ExplainOptions,
        deadline: float | None,
        *,
        priority: int = FOREGROUND,
        progress: Callable[[str, ProgressEvent], None] | None = None,
        signal: bool = False,
    ) -> ExplainOutcome:
        """Explain one input. ``signal=True`` (shadow explanations) also explains the pair's control
        and scores both other models along the dense BackSelect path, for the verdict's measures."""
        pair = self.service.pair(pair_name)
        x = self.one_input(pair, x)
        if opts.variants not in ("dense", "pruned", "both"):
            raise InvalidArgument(f"variants must be dense, pruned or both, got {opts.variants}")
        if opts.threshold is not None and not np.isfinite(opts.threshold):
            raise InvalidArgument(f"threshold must be a finite number, got {opts.threshold}")
        self.check_early(pair, opts)
        groups = self.groups(pair, opts)
        baseline = self.baseline(pair, opts, x)
        # The cache and the concurrency limit are for client requests; background work (shadow
        # explanations) has its own rate budget and must not take client slots or fill the cache.
        foreground = priority == FOREGROUND
        key = _cache_key(pair.name, x, opts)
        hit = self._cache.get(key) if foreground else None
        if hit is not None:
            return ExplainOutcome(**{**hit.__dict__, "cached": True})
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
                outcome = await self._run(pair, x, opts, groups, baseline, deadline, priority, progress, signal)
        except TimeoutError:
            raise DeadlineExceeded("deadline passed during the explanation; it was stopped") from None
        finally:
            self._running -= foreground
        if foreground:
            self._cache.put(key, outcome)
        return outcome

    async def _run(
        self,
        pair: Pair,
        x: np.ndarray,
        opts: ExplainOptions,
        groups: np.ndarray,
        baseline: np.ndarray,
        deadline: float | None,
        priority: int,
        progress: Callable[[str, ProgressEvent], None] | None,
        signal: bool = False,
    ) -> ExplainOutcome:
        with_control = signal and pair.has_control and opts.variants == "both"
        variants = ("dense", "pruned", "control") if with_control else ("dense", "pruned")
        raws = await asyncio.gather(
            *(pair.batchers[v].submit(x[None], deadline=deadline, priority=priority) for v in variants)
        )
        probs = {v: to_probabilities(r, pair.config.output_kind)[0] for v, r in zip(variants, raws, strict=True)}
        top1 = {v: int(np.argmax(p)) for v, p in probs.items()}
        target = top1["dense"] if opts.target is None else opts.target  # a given target passed check_early
        cfg = pair.config.explain
        if opts.threshold is None:
            value, relative = cfg.threshold, cfg.threshold_relative
        else:
            value, relative = opts.threshold, opts.threshold_relative
        threshold = value * float(probs["dense"][target]) if relative else value
        params = self.params(pair, opts, threshold)
        div = cfg.divergence
        explanation = await explain_pair(
            x,
            baseline,
            groups,
            dense_score=self._score_fn(pair, "dense", target, deadline, priority)
            if opts.variants in ("dense", "both")
            else None,
            pruned_score=self._score_fn(pair, "pruned", target, deadline, priority)
            if opts.variants in ("pruned", "both")
            else None,
            params=params,
            dense_top1=top1["dense"],
            pruned_top1=top1["pruned"],
            thresholds=DivergenceThresholds(div.min_iou, div.min_rank_correlation, div.require_cross_sufficiency),
            progress=progress,
            target=target,
            control_score=self._score_fn(pair, "control", target, deadline, priority) if with_control else None,
            control_top1=top1.get("control"),
        )
        values = None
        if signal and opts.variants == "both":
            values = await self._signal_values(pair, x, baseline, groups, explanation, target, deadline, priority)
        return ExplainOutcome(
            pair=pair.name,
            explanation=explanation,
            groups=groups,
            num_features=num_features(groups),
            top1={v: top1[v] for v in ("dense", "pruned")},
            full_scores={v: float(probs[v][target]) for v in ("dense", "pruned")},
            signal_values=values,
        )

    async def _signal_values(
        self,
        pair: Pair,
        x: np.ndarray,
        baseline: np.ndarray,
        groups: np.ndarray,
        e: PairExplanation,
        target: int,
        deadline: float | None,
        priority: int,
    ) -> dict[str, dict[str, float]]:
        """The explanation measures of the pruned model and the control against the dense model."""
        dense = e.dense
        if dense is None:
            return {}
        sides = (("pruned", e.pruned, e.agreement), ("control", e.control, e.control_agreement))
        others = [(v, r, a) for v, r, a in sides if r is not None and a is not None]
        order = dense.backselect[0].order if dense.backselect else ()

        async def path(variant: str) -> np.ndarray | None:
            if not order:
                return None
            fn = self._score_fn(pair, variant, target, deadline, priority)
            return await score_along_path(fn, x, baseline, groups, order, pair.config.max_batch_size)

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
