"""Responses to result types: every ``sisguard.v1`` message the server sends, parsed with the
shared wire codec (:mod:`sisguard.wire`). Pure; a value this SDK does not know (a newer server)
reads as ``"unspecified"`` instead of failing the call, a malformed tensor raises
:class:`InvalidInput`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from grpc_health.v1 import health_pb2
from numpy.typing import NDArray

from sisguard.wire import (
    BASELINES,
    FEATURES,
    OUTPUT_KINDS,
    PROGRESS_VARIANTS,
    STATUSES,
    VERDICTS,
    decode_agreement,
    decode_fields,
    dtype_of,
    from_tensor,
)

from ._errors import ServerError, translated
from ._results import (
    SIS,
    Agreement,
    BackSelectTrace,
    ExplainDefaults,
    ExplainProgress,
    Explanation,
    HealthStatus,
    ImageDefaults,
    InputInfo,
    MeasureExcess,
    ModelFile,
    PairHealth,
    PairInfo,
    Prediction,
    TextInfo,
    VariantExplanation,
    VariantPrediction,
)

__all__ = [
    "no_result",
    "parse_event",
    "parse_explanation",
    "parse_health",
    "parse_models",
    "parse_pair",
    "parse_pair_health",
    "parse_prediction",
]


def _array(t: Any, what: str) -> NDArray[Any]:
    arr: NDArray[Any] = from_tensor(t, f"the server's {what}", copy=True)
    return arr


def _model_file(m: Any) -> ModelFile:
    model_file: ModelFile = decode_fields(m, ModelFile)
    return model_file


@translated()
def parse_pair(p: Any) -> PairInfo:
    d = p.explain_defaults
    info: PairInfo = decode_fields(
        p,
        PairInfo,
        input_shape=tuple(int(s) for s in p.input_shape),
        input_dtype=dtype_of(p.input_dtype, f"pair {p.name}'s input"),
        output_kind=OUTPUT_KINDS.get(p.output_kind, "unspecified"),
        class_labels=tuple(p.class_labels),
        dense=_model_file(p.dense),
        pruned=_model_file(p.pruned),
        explain_defaults=decode_fields(
            d,
            ExplainDefaults,
            features=FEATURES.get(d.features, "unspecified"),
            patch=(d.patch_height, d.patch_width),
            baseline=BASELINES.get(d.baseline, "unspecified"),
        ),
        image=ImageDefaults(scale=p.image.scale if p.HasField("image") else 1.0 / 255.0, invert=p.image.invert),
        control=_model_file(p.control) if p.HasField("control") else None,
        verdict_reference=p.verdict_reference or "dense-only",
        feature_names=tuple(p.feature_names),
        inputs=tuple(
            InputInfo(
                name=i.name,
                shape=tuple(int(s) for s in i.shape),
                dtype=dtype_of(i.dtype, f"pair {p.name}'s input {i.name}"),
                role=i.role,
                derive=i.derive,
            )
            for i in p.inputs
        ),
        text=TextInfo(
            pad_token_id=p.text.pad_token_id,
            mask_token_id=p.text.mask_token_id if p.text.HasField("mask_token_id") else None,
            vocab_size=p.text.vocab_size,
            tokenizer_json=p.text.tokenizer_json,
        )
        if p.HasField("text")
        else None,
    )
    return info


def parse_models(resp: Any) -> list[PairInfo]:
    return [parse_pair(p) for p in resp.pairs]


def parse_pair_health(r: Any) -> PairHealth:
    health: PairHealth = decode_fields(
        r,
        PairHealth,
        verdict=VERDICTS.get(r.verdict, "unspecified"),
        measures=tuple(decode_fields(m, MeasureExcess) for m in r.measures),
    )
    return health


def _variant_prediction(v: Any) -> VariantPrediction:
    return VariantPrediction(
        probabilities=_array(v.probabilities, "probabilities").astype(np.float32, copy=False),
        top1=np.asarray(v.top1, dtype=np.int32),
        top1_probability=np.asarray(v.top1_probability, dtype=np.float32),
    )


@translated()
def parse_prediction(resp: Any) -> Prediction:
    both = len(resp.top1_agree) > 0
    return Prediction(
        pair=resp.pair,
        dense=_variant_prediction(resp.dense) if resp.HasField("dense") else None,
        pruned=_variant_prediction(resp.pruned) if resp.HasField("pruned") else None,
        top1_agree=np.asarray(resp.top1_agree, dtype=bool) if both else None,
        confidence_gap=np.asarray(resp.confidence_gap, dtype=np.float32) if both else None,
        request_id=resp.request_id,
    )


def _sis(s: Any) -> SIS:
    mask = _array(s.mask, "SIS mask")
    return SIS(features=np.asarray(s.features, dtype=np.int32), score=s.score, mask=mask.astype(bool, copy=False))


def _variant_explanation(v: Any) -> VariantExplanation:
    return VariantExplanation(
        status=STATUSES.get(v.status, "unspecified"),
        sis=tuple(_sis(s) for s in v.sis),
        confidence=v.confidence,
        top1=v.top1,
        baseline_score=v.baseline_score,
        evaluations=v.evaluations,
        seconds=v.seconds,
        backselect=tuple(
            BackSelectTrace(order=np.asarray(b.order, dtype=np.int32), scores=np.asarray(b.scores, dtype=np.float64))
            for b in v.backselect
        ),
    )


@translated()
def parse_explanation(resp: Any) -> Explanation:
    group_map = _array(resp.group_map, "group map").astype(np.int32, copy=False) if resp.HasField("group_map") else None
    return Explanation(
        pair=resp.pair,
        target=resp.target,
        threshold=resp.threshold,
        num_features=resp.num_features,
        dense=_variant_explanation(resp.dense) if resp.HasField("dense") else None,
        pruned=_variant_explanation(resp.pruned) if resp.HasField("pruned") else None,
        agreement=decode_agreement(resp.agreement, Agreement) if resp.HasField("agreement") else None,
        cached=resp.cached,
        request_id=resp.request_id,
        group_map=group_map,
    )


def with_names(e: Explanation, info: PairInfo | None) -> Explanation:
    """``e`` carrying the pair's feature names when each of its features is one named element."""
    names = () if info is None else info.feature_names
    g = e.group_map
    if not names or g is None or g.size != len(names) or not np.array_equal(g.ravel(), np.arange(g.size)):
        return e
    return dataclasses.replace(e, feature_names=tuple(names))


def parse_event(event: Any) -> ExplainProgress | Explanation:
    kind = event.WhichOneof("event")
    if kind == "result":
        return parse_explanation(event.result)
    if kind == "progress":
        p = event.progress
        return ExplainProgress(
            variant=PROGRESS_VARIANTS.get(p.variant, "dense"),
            round=p.round,
            step=p.step,
            features_left=p.features_left,
            evaluations=p.evaluations,
        )
    raise ServerError(f"the server sent an explain event of unknown kind {kind!r}")


def no_result() -> ServerError:
    return ServerError("the explain stream ended without a result", code="UNKNOWN")


_HEALTH: dict[int, HealthStatus] = {
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN",
}


def parse_health(resp: Any) -> HealthStatus:
    return _HEALTH.get(resp.status, "UNKNOWN")
