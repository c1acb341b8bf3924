"""Explain requests and results between protobuf and the core's types."""

from __future__ import annotations

import math

import numpy as np

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.errors import InvalidArgument
from sisguard.server.explaining import ExplainOptions, ExplainOutcome
from sisguard.server.grpc import tensors
from sisguard.sis import SISResult, feature_mask

_FEATURES = {
    pb.FEATURE_KIND_UNSPECIFIED: None,
    pb.ELEMENT: "element",
    pb.PIXEL: "pixel",
    pb.PATCH: "patch",
    pb.EXPLICIT: "explicit",
}
_BASELINES = {
    pb.BASELINE_KIND_UNSPECIFIED: None,
    pb.ZEROS: "zeros",
    pb.MEAN: "mean",
    pb.CONSTANT: "constant",
    pb.CUSTOM: "custom",
    pb.BLUR: "blur",
}
_VARIANTS = {pb.VARIANT_UNSPECIFIED: "both", pb.BOTH: "both", pb.DENSE: "dense", pb.PRUNED: "pruned"}
_STATUS = {
    "found": pb.FOUND,
    "not_confident": pb.NOT_CONFIDENT,
    "baseline_sufficient": pb.BASELINE_SUFFICIENT,
    "partial": pb.PARTIAL,
}
_REASONS = {
    "top1_differs": pb.TOP1_DIFFERS,
    "low_iou": pb.LOW_IOU,
    "dense_sis_insufficient_for_pruned": pb.DENSE_SIS_INSUFFICIENT_FOR_PRUNED,
    "pruned_sis_insufficient_for_dense": pb.PRUNED_SIS_INSUFFICIENT_FOR_DENSE,
    "pruned_not_confident": pb.PRUNED_NOT_CONFIDENT,
    "low_rank_correlation": pb.LOW_RANK_CORRELATION,
}


def _lookup(table: dict, value: int, what: str) -> object:  # type: ignore[type-arg]
    if value not in table:
        raise InvalidArgument(f"{what} {value} is not a known value")
    return table[value]


def options(req: pb.ExplainRequest, max_elements: int) -> tuple[np.ndarray, ExplainOptions]:
    """The input and the options of an ExplainRequest, validated as far as the wire format goes."""
    if not req.HasField("input"):
        raise InvalidArgument("input missing: expected one input tensor")
    x = tensors.to_numpy(req.input, "input", max_elements)
    which = req.WhichOneof("threshold")
    threshold = None if which is None else getattr(req, which)
    if threshold is not None and not math.isfinite(threshold):
        raise InvalidArgument(f"threshold must be a finite number, got {threshold}")
    if req.max_sis < 0 or req.batch_k < 0 or req.max_evaluations < 0:
        raise InvalidArgument("max_sis, batch_k and max_evaluations must not be negative")
    if req.mode not in (pb.EXPLAIN_MODE_UNSPECIFIED, pb.EXACT, pb.BATCHED):
        raise InvalidArgument(f"mode {req.mode} is not EXACT or BATCHED")
    if req.mode == pb.BATCHED and req.batch_k < 1:
        raise InvalidArgument("mode BATCHED needs batch_k >= 1")
    features = _lookup(_FEATURES, req.features, "features")
    # Both zero: the pair's default patch. One of them zero is a mistake, refused (1x1 at least).
    ph, pw = req.patch_height, req.patch_width
    patch = (ph, pw) if features == "patch" and (ph or pw) else None
    group_map = tensors.to_numpy(req.group_map, "group_map", max_elements) if req.HasField("group_map") else None
    baseline = _lookup(_BASELINES, req.baseline, "baseline")
    baseline_tensor = (
        tensors.to_numpy(req.baseline_tensor, "baseline_tensor", max_elements)
        if req.HasField("baseline_tensor")
        else None
    )
    if not math.isfinite(req.baseline_constant):
        raise InvalidArgument("baseline_constant must be a finite number")
    return x, ExplainOptions(
        target=req.target if req.HasField("target") else None,
        threshold=threshold,
        threshold_relative=which == "threshold_relative",
        features=features,  # type: ignore[arg-type]
        patch=patch,
        group_map=group_map,
        baseline=baseline,  # type: ignore[arg-type]
        baseline_constant=req.baseline_constant,
        baseline_tensor=baseline_tensor,
        max_sis=req.max_sis or None,
        variants=_lookup(_VARIANTS, req.variants, "variants"),  # type: ignore[arg-type]
        batch_k=req.batch_k if req.mode == pb.BATCHED else 1,
        max_evaluations=req.max_evaluations or None,
        allow_partial=req.allow_partial,
    )


def _variant(result: SISResult, groups: np.ndarray, top1: int, backselect: bool) -> pb.VariantExplanation:
    out = pb.VariantExplanation(
        status=_STATUS[result.status],
        confidence=result.full_score,
        top1=top1,
        baseline_score=result.baseline_score,
        evaluations=result.evaluations,
        seconds=result.seconds,
    )
    for subset in result.collection:
        out.sis.add(
            features=list(subset.features),
            score=subset.score,
            mask=tensors.from_numpy(feature_mask(groups, subset.features)),
        )
    if backselect:
        for trace in result.backselect:
            out.backselect.add(order=list(trace.order), scores=list(trace.scores))
    return out


def response(outcome: ExplainOutcome, request_id: str, backselect: bool) -> pb.ExplainResponse:
    ex = outcome.explanation
    resp = pb.ExplainResponse(
        pair=outcome.pair,
        target=ex.target,
        threshold=ex.threshold,
        num_features=outcome.num_features,
        cached=outcome.cached,
        request_id=request_id,
        group_map=tensors.from_numpy(outcome.groups.astype(np.int32)),
    )
    if ex.dense is not None:
        resp.dense.CopyFrom(_variant(ex.dense, outcome.groups, outcome.top1["dense"], backselect))
    if ex.pruned is not None:
        resp.pruned.CopyFrom(_variant(ex.pruned, outcome.groups, outcome.top1["pruned"], backselect))
    a = ex.agreement
    if a is not None:
        agreement = pb.Agreement(
            top1_agree=a.top1_agree,
            confidence_gap=a.confidence_gap,
            iou_first=a.iou_first,
            iou_union=a.iou_union,
            dense_sis_score_on_pruned=a.dense_sis_score_on_pruned,
            pruned_sis_score_on_dense=a.pruned_sis_score_on_dense,
            rank_correlation=a.rank_correlation,
            dense_sis_size=a.dense_sis_size,
            pruned_sis_size=a.pruned_sis_size,
            divergent=a.divergent,
            reasons=[_REASONS[r] for r in a.reasons],
        )
        if a.dense_sis_sufficient_for_pruned is not None:
            agreement.dense_sis_sufficient_for_pruned = a.dense_sis_sufficient_for_pruned
        if a.pruned_sis_sufficient_for_dense is not None:
            agreement.pruned_sis_sufficient_for_dense = a.pruned_sis_sufficient_for_dense
        resp.agreement.CopyFrom(agreement)
    return resp
