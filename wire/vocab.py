"""The wire's enum vocabularies, both ways: one name per concept for client and server.

Names are the proto value names in lower case, with one exception: ``BaselineKind.CUSTOM`` is
``"tensor"`` (the baseline is the request's ``baseline_tensor``; the proto value keeps its name
and number). Code 0 (``*_UNSPECIFIED``) decodes to the vocabulary's default: ``None`` ("the
pair's default") unless a default is given, as Predict and Explain read an unset variant as both.

>>> VARIANTS.code("pruned") == pb.PRUNED, VARIANTS.name(pb.VARIANT_UNSPECIFIED), BASELINES.name(pb.CUSTOM)
(True, 'both', 'tensor')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, Literal, Protocol, TypeAlias, TypeVar

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.sis.agreement import DivergenceReason

from .errors import WireError

__all__ = [
    "BASELINES",
    "FEATURES",
    "MODES",
    "OUTPUT_KINDS",
    "PROGRESS_VARIANTS",
    "REASONS",
    "STATUSES",
    "VARIANTS",
    "VERDICTS",
    "BaselineName",
    "FeatureName",
    "ModeName",
    "OutputKindName",
    "ReasonName",
    "StatusName",
    "VariantName",
    "VariantsName",
    "VerdictName",
    "Vocabulary",
]

N = TypeVar("N", bound=str)
F = TypeVar("F")


class _ProtoEnum(Protocol):
    def Name(self, number: int) -> str: ...


class Vocabulary(Generic[N]):
    """One proto enum as names: ``code(name)`` to send, ``name(code)`` to read, strictly or leniently.

    Args:
        what: the field's name in messages (``"variant"``, ``"baseline"``).
        enum: the generated enum wrapper (``pb.Variant``), for the value names in messages.
        names: proto code -> our name, for every value but UNSPECIFIED.
        default: what UNSPECIFIED (code 0) decodes to.
    """

    def __init__(self, what: str, enum: _ProtoEnum, names: Mapping[int, N], default: N | None = None) -> None:
        self.what = what
        self._enum = enum
        self._names = dict(names)
        self._codes = {name: code for code, name in self._names.items()}
        self.default = default

    @property
    def names(self) -> tuple[N, ...]:
        return tuple(self._codes)

    def _expected(self) -> str:
        quoted = [repr(n) for n in self._codes]
        return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def code(self, name: str) -> int:
        """The proto code of ``name``; :class:`WireError` for a name outside the vocabulary."""
        try:
            return self._codes[name]  # type: ignore[index]
        except (KeyError, TypeError):
            raise WireError(f"{self.what} must be {self._expected()}, got {name!r}") from None

    def name(self, code: int) -> N | None:
        """Our name of a received code; the default for UNSPECIFIED, :class:`WireError` for an unknown code."""
        if code == 0:
            return self.default
        try:
            return self._names[code]
        except KeyError:
            value_names = ", ".join(self._enum.Name(c) for c in self._names)
            raise WireError(f"{self.what} {code} is not one of {value_names}") from None

    def get(self, code: int, fallback: F) -> N | F:
        """Our name of a received code, ``fallback`` for UNSPECIFIED and for codes this side does not
        know (a newer peer): for reading responses, where an unknown value must not fail the call."""
        return self._names.get(code, fallback)


VariantName = Literal["dense", "pruned"]
VariantsName = Literal["dense", "pruned", "both"]
OutputKindName = Literal["logits", "probabilities", "scores"]
FeatureName = Literal["element", "pixel", "patch", "explicit"]
BaselineName = Literal["zeros", "mean", "constant", "tensor", "blur", "pad_token", "mask_token"]
ModeName = Literal["exact", "batched"]
StatusName = Literal["found", "not_confident", "baseline_sufficient", "partial"]
ReasonName: TypeAlias = DivergenceReason  # the engine's names of the divergence reasons
VerdictName = Literal["healthy", "damaged", "insufficient_data"]

#: which models a Predict or Explain runs (``Variant``); unset is both
VARIANTS = Vocabulary[VariantsName](
    "variant", pb.Variant, {pb.DENSE: "dense", pb.PRUNED: "pruned", pb.BOTH: "both"}, default="both"
)
#: the model an Explain progress event is about (``Variant`` without BOTH)
PROGRESS_VARIANTS = Vocabulary[VariantName]("variant", pb.Variant, {pb.DENSE: "dense", pb.PRUNED: "pruned"})
OUTPUT_KINDS = Vocabulary[OutputKindName](
    "output_kind", pb.OutputKind, {pb.LOGITS: "logits", pb.PROBABILITIES: "probabilities", pb.SCORES: "scores"}
)
FEATURES = Vocabulary[FeatureName](
    "features", pb.FeatureKind, {pb.ELEMENT: "element", pb.PIXEL: "pixel", pb.PATCH: "patch", pb.EXPLICIT: "explicit"}
)
BASELINES = Vocabulary[BaselineName](
    "baseline",
    pb.BaselineKind,
    {
        pb.ZEROS: "zeros",
        pb.MEAN: "mean",
        pb.CONSTANT: "constant",
        pb.CUSTOM: "tensor",
        pb.BLUR: "blur",
        pb.PAD_TOKEN: "pad_token",
        pb.MASK_TOKEN: "mask_token",
    },
)
MODES = Vocabulary[ModeName]("mode", pb.ExplainMode, {pb.EXACT: "exact", pb.BATCHED: "batched"}, default="exact")
STATUSES = Vocabulary[StatusName](
    "status",
    pb.SISStatus,
    {
        pb.FOUND: "found",
        pb.NOT_CONFIDENT: "not_confident",
        pb.BASELINE_SUFFICIENT: "baseline_sufficient",
        pb.PARTIAL: "partial",
    },
)
REASONS = Vocabulary[ReasonName](
    "reason",
    pb.DivergenceReason,
    {
        pb.TOP1_DIFFERS: "top1_differs",
        pb.LOW_IOU: "low_iou",
        pb.DENSE_SIS_INSUFFICIENT_FOR_PRUNED: "dense_sis_insufficient_for_pruned",
        pb.PRUNED_SIS_INSUFFICIENT_FOR_DENSE: "pruned_sis_insufficient_for_dense",
        pb.PRUNED_NOT_CONFIDENT: "pruned_not_confident",
        pb.LOW_RANK_CORRELATION: "low_rank_correlation",
    },
)
VERDICTS = Vocabulary[VerdictName](
    "verdict", pb.Verdict, {pb.HEALTHY: "healthy", pb.DAMAGED: "damaged", pb.INSUFFICIENT_DATA: "insufficient_data"}
)
