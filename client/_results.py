"""Typed results. Arrays are numpy; everything else plain Python. All are frozen dataclasses;
``to_dict()`` gives a JSON-ready view (arrays as nested lists)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from sisguard.sis import AgreementResult

__all__ = [
    "SIS",
    "Agreement",
    "BackSelectTrace",
    "ExplainDefaults",
    "ExplainProgress",
    "Explanation",
    "HealthStatus",
    "MeasureExcess",
    "ModelFile",
    "PairHealth",
    "PairInfo",
    "Prediction",
    "VariantExplanation",
    "VariantPrediction",
]

VariantName = Literal["dense", "pruned"]
Variants = Literal["dense", "pruned", "both"]
SISStatus = Literal["found", "not_confident", "baseline_sufficient", "partial", "unspecified"]
HealthStatus = Literal["SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", "UNKNOWN"]


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _finite(value.tolist()) if value.dtype.kind in "fc" else value.tolist()
    if isinstance(value, np.dtype):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: arrays become lists, NaN becomes ``None``."""
        out: dict[str, Any] = _jsonable(self)
        return out


# -- ListModels -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFile(_Result):
    """One ONNX file of a pair, as the server loaded it."""

    path: str
    sha256: str
    parameter_count: int
    nonzero_parameter_count: int
    execution_provider: str
    infer_name: str
    ready: bool


@dataclass(frozen=True)
class ExplainDefaults(_Result):
    """What an explain request gets for each option it leaves out."""

    threshold: float
    threshold_relative: bool
    features: str
    patch: tuple[int, int]
    baseline: str
    max_evaluations: int
    num_features: int


@dataclass(frozen=True)
class ImageDefaults(_Result):
    """How an image file becomes this pair's input: resize to H x W, invert if set, times ``scale``."""

    scale: float
    invert: bool


@dataclass(frozen=True)
class InputInfo(_Result):
    """One input of a pair's model: shape of one sample (-1: a dynamic axis) and how it is fed."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    #: "features" (what is predicted on and explained), "passthrough" (send it) or "derived"
    role: str
    #: derived inputs: "presence" (1 where the token is not the pad id), "zeros" or "ones"
    derive: str = ""


@dataclass(frozen=True)
class TextInfo(_Result):
    """Token-id inputs of a text pair."""

    pad_token_id: int
    mask_token_id: int | None
    vocab_size: int
    #: the server's configured tokenizer.json ("" when none): raw text is tokenized with it
    tokenizer_json: str = ""


@dataclass(frozen=True)
class PairInfo(_Result):
    """A served dense/pruned pair and its signature."""

    name: str
    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype[Any]
    output_name: str
    output_kind: str
    num_outputs: int
    class_labels: tuple[str, ...]
    dense: ModelFile
    pruned: ModelFile
    prune_ratio: float
    max_batch_size: int
    explain_defaults: ExplainDefaults
    image: ImageDefaults
    #: the control (dense retrained like the pruned model, not pruned); None when the pair has none
    control: ModelFile | None = None
    #: what the divergence verdict compares with: "control", "calibration" or "dense-only"
    verdict_reference: str = "dense-only"
    #: the name of each input element (tabular pairs), empty when not configured
    feature_names: tuple[str, ...] = ()
    #: every input of the model (one for a one-input model)
    inputs: tuple[InputInfo, ...] = ()
    #: token-id settings of a text pair, None otherwise
    text: TextInfo | None = None


# -- PairHealth -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureExcess(_Result):
    """One measure's excess of dense-vs-pruned over its reference, with its interval."""

    name: str
    source: str  # explain | probe
    deciding: bool
    margin: float
    samples: int
    pruned_mean: float
    reference_mean: float
    reference: str  # control | dense | calibration | none
    estimate: float
    lower: float
    upper: float
    samples_needed: int
    damaged: bool


@dataclass(frozen=True)
class PairHealth(_Result):
    """The pair's divergence verdict (``healthy``, ``damaged``, ``insufficient_data``) and its evidence."""

    pair: str
    verdict: str
    reference: str
    samples: int
    samples_needed: int
    min_samples: int
    confidence: float
    window: int
    measures: tuple[MeasureExcess, ...]
    request_id: str

    @property
    def deciding(self) -> tuple[MeasureExcess, ...]:
        return tuple(m for m in self.measures if m.deciding)


# -- Predict ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantPrediction(_Result):
    """One model's outputs for a batch."""

    probabilities: NDArray[np.float32]  # [batch, num_outputs]
    top1: NDArray[np.int32]  # [batch]
    top1_probability: NDArray[np.float32]  # [batch]


@dataclass(frozen=True)
class Prediction(_Result):
    """Predict's answer. ``top1_agree`` and ``confidence_gap`` are set when both variants ran."""

    pair: str
    dense: VariantPrediction | None
    pruned: VariantPrediction | None
    top1_agree: NDArray[np.bool_] | None
    confidence_gap: NDArray[np.float32] | None
    request_id: str

    @property
    def first(self) -> VariantPrediction:
        """The dense prediction when present, else the pruned one."""
        out = self.dense or self.pruned
        if out is None:
            raise ValueError("the prediction holds no variant")
        return out


# -- Explain ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SIS(_Result):
    """One sufficient input subset."""

    features: NDArray[np.int32]  # feature ids, most important first
    score: float  # the model's score on the input with only these features present
    mask: NDArray[np.bool_]  # one input's shape: True where an element belongs to the subset

    def __len__(self) -> int:
        return int(self.features.size)


@dataclass(frozen=True)
class BackSelectTrace(_Result):
    """The full BackSelect removal order of one SIS round and the score after each removal."""

    order: NDArray[np.int32]
    scores: NDArray[np.float64]


@dataclass(frozen=True)
class VariantExplanation(_Result):
    """One model's explanation."""

    status: SISStatus
    sis: tuple[SIS, ...]
    confidence: float  # the model's score for the target on the full input
    top1: int
    baseline_score: float
    evaluations: int
    seconds: float
    backselect: tuple[BackSelectTrace, ...]

    @property
    def found(self) -> bool:
        return self.status in ("found", "partial") and bool(self.sis)

    def union_mask(self, shape: tuple[int, ...]) -> NDArray[np.bool_]:
        """Elements in any SIS of the collection (all False when there is none)."""
        out = np.zeros(shape, dtype=bool)
        for s in self.sis:
            out |= s.mask
        return out


@dataclass(frozen=True)
class Agreement(_Result, AgreementResult):  # type: ignore[misc]  # the engine's type, seen as Any by mypy here
    """How far the dense and pruned rationales agree (both variants explained): the engine's
    :class:`sisguard.sis.AgreementResult` as the server computed it, with :meth:`to_dict`.

    ``*_sufficient_for_*`` is ``None`` and ``*_score_on_*`` NaN where a side found no SIS;
    ``rank_correlation`` is NaN without BackSelect traces on both sides.
    """


@dataclass(frozen=True)
class Explanation(_Result):
    """Explain's answer: per variant SIS, their agreement, and what the server used."""

    pair: str
    target: int
    threshold: float  # the absolute tau used
    num_features: int
    dense: VariantExplanation | None
    pruned: VariantExplanation | None
    agreement: Agreement | None
    cached: bool
    request_id: str
    group_map: NDArray[np.int32] | None  # the feature of each element, one input's shape
    #: the pair's feature names when each feature is one named element (tabular pairs), else ()
    feature_names: tuple[str, ...] = ()

    def sis_names(self, variant: VariantName = "dense", index: int = 0) -> list[str]:
        """The features of a SIS by name (their indices as text when the pair names none)."""
        v = self.variants.get(variant)
        if v is None or len(v.sis) <= index:
            return []
        names = self.feature_names
        return [names[f] if f < len(names) else str(f) for f in v.sis[index].features.tolist()]

    @property
    def variants(self) -> dict[VariantName, VariantExplanation]:
        out: dict[VariantName, VariantExplanation] = {}
        if self.dense is not None:
            out["dense"] = self.dense
        if self.pruned is not None:
            out["pruned"] = self.pruned
        return out

    @property
    def evaluations(self) -> int:
        """Model evaluations over every explained variant."""
        return sum(v.evaluations for v in self.variants.values())

    @property
    def seconds(self) -> float:
        """Longest time any variant took (they run concurrently)."""
        return max((v.seconds for v in self.variants.values()), default=0.0)


@dataclass(frozen=True)
class ExplainProgress(_Result):
    """A progress event of :meth:`Client.explain_stream`."""

    variant: VariantName
    round: int  # SIS index in the collection, from 0
    step: int  # BackSelect step within the round
    features_left: int
    evaluations: int  # so far, this variant
