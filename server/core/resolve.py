"""Explain requests, parsed once and resolved once.

:class:`ExplainOptions` is the one request object the codec builds; it refuses at construction
what is wrong whatever the pair (a NaN threshold, a negative count). :func:`resolve` is pure: it
takes the request against one pair's defaults, its files (read at start-up, see
:class:`~sisguard.server.pairs.Pair`) and the server's limits, refuses what does not fit the
pair, and returns everything the explanation needs — feature groups, baseline, engine
parameters and divergence thresholds — before any model runs. The SIS engine keeps only its own
invariants (shapes, group maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sisguard.server.config import ConfigError, LimitsConfig
from sisguard.server.core.inputs import one_input
from sisguard.server.core.named import Given, explain_inputs
from sisguard.server.errors import InvalidArgument, ServiceError
from sisguard.server.pairs import Pair
from sisguard.server.signal.shifts import blur, shift_applies
from sisguard.sis import (
    DivergenceThresholds,
    SISParams,
    constant_baseline,
    element_groups,
    explicit_groups,
    num_features,
    patch_groups,
    pixel_groups,
    tensor_baseline,
    zero_baseline,
)
from sisguard.sis.errors import SISError

Variants = Literal["dense", "pruned", "both"]
FeatureKind = Literal["element", "pixel", "patch", "explicit"]
BaselineKind = Literal["zeros", "mean", "constant", "tensor", "blur", "pad_token", "mask_token"]
Mode = Literal["exact", "batched"]

VARIANT_CHOICES: tuple[str, ...] = ("dense", "pruned", "both")


@dataclass(frozen=True)
class ExplainOptions:
    """One Explain request's options; ``None`` takes the pair's default.

    Checked on construction as far as no pair is needed; :func:`resolve` checks the rest.
    ``batch_k`` counts only in mode ``batched`` (exact BackSelect removes one feature a step).
    """

    target: int | None = None
    threshold: float | None = None
    threshold_relative: bool = False
    features: FeatureKind | None = None
    patch: tuple[int, int] | None = None
    group_map: np.ndarray | None = field(default=None, compare=False, repr=False)
    baseline: BaselineKind | None = None
    baseline_constant: float = 0.0
    baseline_tensor: np.ndarray | None = field(default=None, compare=False, repr=False)
    max_sis: int | None = None
    variants: Variants = "both"
    mode: Mode = "exact"
    batch_k: int = 1
    max_evaluations: int | None = None
    allow_partial: bool = False

    def __post_init__(self) -> None:
        if self.variants not in VARIANT_CHOICES:
            raise InvalidArgument(f"variants must be dense, pruned or both, got {self.variants}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise InvalidArgument(f"threshold must be a finite number, got {self.threshold}")
        if not math.isfinite(self.baseline_constant):
            raise InvalidArgument("baseline_constant must be a finite number")
        if any(v is not None and v < 0 for v in (self.max_sis, self.max_evaluations)) or self.batch_k < 0:
            raise InvalidArgument("max_sis, batch_k and max_evaluations must not be negative")
        if self.mode not in ("exact", "batched"):
            raise InvalidArgument(f"mode {self.mode} is not EXACT or BATCHED")
        if self.mode == "batched" and self.batch_k < 1:
            raise InvalidArgument("mode BATCHED needs batch_k >= 1")
        if self.mode == "exact":
            object.__setattr__(self, "batch_k", 1)  # one feature a step; the cache key does not depend on it


@dataclass(frozen=True)
class Resolved:
    """A request against one pair: what the explanation runs with (all checked)."""

    x: np.ndarray  # one input, the pair's shape
    groups: np.ndarray
    baseline: np.ndarray
    num_features: int
    explained: tuple[str, ...]  # the variants BackSelect runs on: ("dense",), ("pruned",) or both
    target: int | None  # None: the dense model's top-1
    threshold: float
    threshold_relative: bool
    max_sis: int
    batch_k: int
    max_evaluations: int
    allow_partial: bool
    chunk_size: int
    thresholds: DivergenceThresholds
    #: passed-through inputs of a several-input model (one sample each), fed with every masked copy
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def tau(self, dense_full_score: float) -> float:
        """The absolute threshold: ``r * f_dense(x)`` when relative."""
        return self.threshold * dense_full_score if self.threshold_relative else self.threshold

    def params(self, tau: float) -> SISParams:
        return SISParams(
            threshold=tau,
            max_sis=self.max_sis,
            batch_k=self.batch_k,
            max_evaluations=self.max_evaluations,
            allow_partial=self.allow_partial,
            chunk_size=self.chunk_size,
        )


def resolve(pair: Pair, x: Given, opts: ExplainOptions, limits: LimitsConfig) -> Resolved:
    """Check ``opts`` against the pair and the limits and build what the explanation needs.

    Order matters to callers: the cheap checks (counts, target, threshold range) come before the
    group map and the baseline are built.
    """
    features, extras = explain_inputs(pair, x, limits)
    x = one_input(pair, features, limits)
    cfg = pair.config.explain
    max_sis = opts.max_sis or cfg.max_sis
    if not 1 <= max_sis <= limits.max_sis:
        raise InvalidArgument(f"max_sis must be between 1 and {limits.max_sis}, got {max_sis}")
    budget = opts.max_evaluations or cfg.max_evaluations
    if opts.target is not None and not 0 <= opts.target < pair.num_outputs:
        raise InvalidArgument(f"target {opts.target} is out of range: pair {pair.name} has {pair.num_outputs} outputs")
    if opts.threshold is None:
        threshold, relative = cfg.threshold, cfg.threshold_relative
    else:
        threshold, relative = opts.threshold, opts.threshold_relative
        check_threshold(pair, threshold, relative)
    groups = feature_groups(pair, opts, limits, tuple(x.shape))
    baseline = make_baseline(pair, opts, x)
    div = cfg.divergence
    explained = ("dense", "pruned") if opts.variants == "both" else (opts.variants,)
    return Resolved(
        x=x,
        groups=groups,
        baseline=baseline,
        num_features=num_features(groups),
        explained=explained,
        target=opts.target,
        threshold=threshold,
        threshold_relative=relative,
        max_sis=max_sis,
        batch_k=opts.batch_k,
        max_evaluations=min(budget, limits.max_evaluations),
        allow_partial=opts.allow_partial,
        chunk_size=pair.config.max_batch_size,
        thresholds=DivergenceThresholds(div.min_iou, div.min_rank_correlation, div.require_cross_sufficiency),
        extras=extras,
    )


def check_threshold(pair: Pair, threshold: float, relative: bool) -> None:
    """A threshold no probability can meet (or every one meets) on a pair whose scores are probabilities."""
    if pair.config.output_kind not in ("logits", "probabilities"):
        return
    low_ok = threshold > 0 if relative else threshold >= 0
    if not (low_ok and threshold <= 1):
        what = "relative threshold r (tau = r * f(x))" if relative else "threshold tau"
        interval = "(0, 1]" if relative else "[0, 1]"
        raise InvalidArgument(f"{what} {threshold:g} is outside {interval}: pair {pair.name} scores are probabilities")


def feature_groups(
    pair: Pair, opts: ExplainOptions, limits: LimitsConfig, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """The feature map of one input of ``shape`` (the pair's, or an explained input's when an axis is dynamic)."""
    cfg = pair.config.explain
    kind = opts.features or cfg.features
    shape = pair.input_shape if shape is None else shape
    cap = limits.max_features
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
    group_map = opts.group_map if opts.group_map is not None else pair.group_map
    if group_map is None:
        raise InvalidArgument("features=explicit needs a group_map (none sent, none configured)")
    return explicit_groups(group_map, shape, max_features=cap)


def make_baseline(pair: Pair, opts: ExplainOptions, x: np.ndarray | None) -> np.ndarray:
    baseline = _baseline_values(pair, opts, x)
    vocab = pair.plan.vocab_size
    if vocab is not None and baseline.size:
        bad = (baseline < 0) | (baseline >= vocab)
        if bad.any():  # a negative id would be read from the embedding table's end, silently
            first = np.unravel_index(int(np.argmax(bad)), baseline.shape)
            raise InvalidArgument(
                f"baseline holds token id {int(baseline[first])} at index {list(map(int, first))}: pair "
                f"{pair.name}'s vocabulary is ids 0 to {vocab - 1}"
            )
    return baseline


def _baseline_values(pair: Pair, opts: ExplainOptions, x: np.ndarray | None) -> np.ndarray:
    cfg = pair.config.explain
    kind = opts.baseline or cfg.baseline
    shape, dtype = (pair.input_shape if x is None else tuple(x.shape)), pair.input_dtype
    if kind in ("pad_token", "mask_token"):
        text = pair.config.text
        token = None if text is None else (text.pad_token_id if kind == "pad_token" else text.mask_token_id)
        if token is None:
            raise InvalidArgument(
                f"baseline={kind} needs pair {pair.name}'s text.{kind}_id"
                if text is not None else f"baseline={kind} needs token-id inputs; pair {pair.name} has no text section"
            )
        return constant_baseline(shape, token, dtype)
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
    if kind == "tensor":
        if opts.baseline_tensor is None:
            raise InvalidArgument("baseline=CUSTOM needs baseline_tensor")
        given = np.asarray(opts.baseline_tensor)
        fractional = given.dtype.kind == "f" and np.any(np.isfinite(given) & (given != np.round(given)))
        if np.issubdtype(dtype, np.integer) and fractional:
            raise InvalidArgument(
                f"baseline tensor must hold whole numbers: pair {pair.name} takes {np.dtype(dtype).name} inputs"
            )
        return tensor_baseline(given, shape, dtype)
    if pair.mean is None:
        raise InvalidArgument(f"pair {pair.name} has no mean baseline configured (explain.mean_file)")
    return tensor_baseline(pair.mean, shape, dtype)


def default_num_features(pair: Pair, limits: LimitsConfig) -> int:
    """Features of the pair's default grouping (0 when it cannot be built without a request)."""
    try:
        return num_features(feature_groups(pair, ExplainOptions(), limits))
    except (ServiceError, SISError, ValueError):
        return 0


def check_pair_files(pair: Pair, limits: LimitsConfig) -> None:
    """The pair's configured group map and mean baseline fit its input (else every Explain using
    them would fail later); raises ConfigError naming the file."""
    ex = pair.config.explain
    explicit, mean = ExplainOptions(features="explicit"), ExplainOptions(baseline="mean")
    checks = (
        ("group_map_file", ex.group_map_file, lambda: feature_groups(pair, explicit, limits)),
        ("mean_file", ex.mean_file, lambda: make_baseline(pair, mean, None)),
    )
    for what, path, build in checks:
        if path is None:
            continue
        try:
            build()
        except (ServiceError, SISError, ValueError) as exc:
            raise ConfigError(f"pair {pair.name}: explain.{what} {path} does not fit: {exc}") from exc
