"""``sisguard.v1`` messages to the data plane's types and back.

Decoding builds the core's request objects (tensors and enum values through the shared wire codec
:mod:`sisguard.wire`); encoding turns the core's results into responses. Option values are checked
where the request object is built (:class:`~sisguard.server.core.resolve.ExplainOptions`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.core.dataplane import ExplainProgress, PairSummary, PredictResult, PredictVariant
from sisguard.server.core.explain import ExplainOutcome
from sisguard.server.core.named import FEATURES_KEY
from sisguard.server.core.resolve import ExplainOptions
from sisguard.server.errors import InvalidArgument
from sisguard.server.probabilities import VariantOutput
from sisguard.server.signal.verdict import VerdictReport
from sisguard.sis import SISResult, feature_mask
from sisguard.wire import (
    BASELINES,
    FEATURES,
    MODES,
    OUTPUT_KINDS,
    PROGRESS_VARIANTS,
    STATUSES,
    VARIANTS,
    VERDICTS,
    code_of,
    encode_agreement,
    from_tensor,
    to_tensor,
)

# -- ListModels -------------------------------------------------------------------------------


def pair_info(summary: PairSummary) -> pb.PairInfo:
    pair = summary.pair
    cfg = pair.config
    ex = cfg.explain

    def model(variant: str) -> pb.ModelFile:
        f = pair.facts(variant)
        return pb.ModelFile(
            path=f.path,
            sha256=f.sha256,
            parameter_count=f.parameter_count,
            nonzero_parameter_count=f.nonzero_parameter_count,
            execution_provider=f.execution_provider,
            infer_name=f.infer_name,
            ready=True,
        )

    sig = pair.models["dense"].signature
    plan = pair.plan
    text = cfg.text
    return pb.PairInfo(
        name=pair.name,
        input_name=sig.input_name,
        input_shape=list(pair.input_shape),
        input_dtype=code_of(pair.input_dtype),
        output_name=sig.output_name,
        output_kind=OUTPUT_KINDS.code(cfg.output_kind),
        num_outputs=pair.num_outputs,
        class_labels=list(cfg.class_labels),
        dense=model("dense"),
        pruned=model("pruned"),
        prune_ratio=pair.prune_ratio,
        max_batch_size=cfg.max_batch_size,
        explain_defaults=pb.ExplainDefaults(
            threshold=ex.threshold,
            threshold_relative=ex.threshold_relative,
            features=FEATURES.code(ex.features),
            patch_height=ex.patch[0],
            patch_width=ex.patch[1],
            baseline=BASELINES.code(ex.baseline),
            max_evaluations=ex.max_evaluations,
            num_features=summary.default_num_features,
        ),
        image=pb.ImageDefaults(scale=cfg.image.scale, invert=cfg.image.invert),
        control=model("control") if pair.has_control else None,
        verdict_reference="control" if pair.has_control
        else ("calibration" if cfg.calibration_file is not None else "dense-only"),
        feature_names=list(pair.feature_names),
        inputs=[
            pb.InputInfo(name=i.name, shape=list(i.shape), dtype=code_of(i.dtype), role=i.role, derive=i.derive or "")
            for i in plan.all
        ],
        text=None if text is None else pb.TextDefaults(
            pad_token_id=text.pad_token_id,
            mask_token_id=text.mask_token_id,
            vocab_size=plan.vocab_size or 0,
            tokenizer_json=pair.tokenizer_json or "",
        ),
    )


def list_response(summaries: list[PairSummary]) -> pb.ListModelsResponse:
    return pb.ListModelsResponse(pairs=[pair_info(s) for s in summaries])


# -- Predict ----------------------------------------------------------------------------------


def _named(
    plain: np.ndarray | None, named: Mapping[str, pb.Tensor], max_elements: int
) -> np.ndarray | dict[str, np.ndarray] | None:
    """The plain tensor alone, or every tensor by name (the plain one under FEATURES_KEY)."""
    if not named:
        return plain
    out = {name: from_tensor(t, f"input {name}", max_elements) for name, t in named.items()}
    if plain is not None:
        out[FEATURES_KEY] = plain
    return out


def predict_request(
    req: pb.PredictRequest, max_elements: int
) -> tuple[np.ndarray | dict[str, np.ndarray] | None, PredictVariant]:
    """The input rows (None when missing: the data plane says what the pair expects) and the variant."""
    variant: PredictVariant = VARIANTS.name(req.variant)  # type: ignore[assignment]
    x = from_tensor(req.inputs, "inputs", max_elements) if req.HasField("inputs") else None
    return _named(x, req.named_inputs, max_elements), variant


def _variant_prediction(out: VariantOutput) -> pb.VariantPrediction:
    return pb.VariantPrediction(
        probabilities=to_tensor(out.probabilities),
        top1=out.top1.tolist(),
        top1_probability=out.top1_probability.tolist(),
    )


def predict_response(result: PredictResult, request_id: str) -> pb.PredictResponse:
    resp = pb.PredictResponse(pair=result.pair, request_id=request_id)
    if "dense" in result.outputs:
        resp.dense.CopyFrom(_variant_prediction(result.outputs["dense"]))
    if "pruned" in result.outputs:
        resp.pruned.CopyFrom(_variant_prediction(result.outputs["pruned"]))
    if result.top1_agree is not None and result.confidence_gap is not None:
        resp.top1_agree.extend(result.top1_agree.tolist())
        resp.confidence_gap.extend(result.confidence_gap.tolist())
    return resp


# -- Explain ----------------------------------------------------------------------------------


def explain_request(
    req: pb.ExplainRequest, max_elements: int
) -> tuple[np.ndarray | dict[str, np.ndarray], ExplainOptions]:
    """The input and the options of an ExplainRequest (the options check themselves)."""
    if not req.HasField("input") and not req.named_inputs:
        raise InvalidArgument("input missing: expected one input tensor")
    plain = from_tensor(req.input, "input", max_elements) if req.HasField("input") else None
    x = _named(plain, req.named_inputs, max_elements)
    if x is None:  # pragma: no cover - excluded above
        raise InvalidArgument("input missing: expected one input tensor")
    which = req.WhichOneof("threshold")
    features = FEATURES.name(req.features)
    # Both zero: the pair's default patch. One of them zero is a mistake, refused (1x1 at least).
    ph, pw = req.patch_height, req.patch_width
    return x, ExplainOptions(
        target=req.target if req.HasField("target") else None,
        threshold=None if which is None else getattr(req, which),
        threshold_relative=which == "threshold_relative",
        features=features,
        patch=(ph, pw) if features == "patch" and (ph or pw) else None,
        group_map=from_tensor(req.group_map, "group_map", max_elements) if req.HasField("group_map") else None,
        baseline=BASELINES.name(req.baseline),
        baseline_constant=req.baseline_constant,
        baseline_tensor=from_tensor(req.baseline_tensor, "baseline_tensor", max_elements)
        if req.HasField("baseline_tensor")
        else None,
        max_sis=req.max_sis or None,
        variants=VARIANTS.name(req.variants),  # type: ignore[arg-type]
        mode=MODES.name(req.mode),  # type: ignore[arg-type]
        batch_k=req.batch_k,
        max_evaluations=req.max_evaluations or None,
        allow_partial=req.allow_partial,
    )


def _variant(result: SISResult, groups: np.ndarray, top1: int, backselect: bool) -> pb.VariantExplanation:
    out = pb.VariantExplanation(
        status=STATUSES.code(result.status),
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
            mask=to_tensor(feature_mask(groups, subset.features)),
        )
    if backselect:
        for trace in result.backselect:
            out.backselect.add(order=list(trace.order), scores=list(trace.scores))
    return out


def explain_response(outcome: ExplainOutcome, request_id: str, backselect: bool) -> pb.ExplainResponse:
    ex = outcome.explanation
    resp = pb.ExplainResponse(
        pair=outcome.pair,
        target=ex.target,
        threshold=ex.threshold,
        num_features=outcome.num_features,
        cached=outcome.cached,
        request_id=request_id,
        group_map=to_tensor(outcome.groups.astype(np.int32)),
    )
    if ex.dense is not None:
        resp.dense.CopyFrom(_variant(ex.dense, outcome.groups, outcome.top1["dense"], backselect))
    if ex.pruned is not None:
        resp.pruned.CopyFrom(_variant(ex.pruned, outcome.groups, outcome.top1["pruned"], backselect))
    if ex.agreement is not None:
        resp.agreement.CopyFrom(encode_agreement(ex.agreement))
    return resp


def progress_event(p: ExplainProgress) -> pb.ExplainEvent:
    ev = p.event
    return pb.ExplainEvent(
        progress=pb.ExplainProgress(
            variant=PROGRESS_VARIANTS.code(p.variant),
            round=ev.round,
            step=ev.step,
            features_left=ev.features_left,
            evaluations=ev.evaluations,
        )
    )


# -- PairHealth -------------------------------------------------------------------------------


def health_response(report: VerdictReport, request_id: str) -> pb.PairHealthResponse:
    return pb.PairHealthResponse(
        pair=report.pair,
        verdict=VERDICTS.code(report.verdict),
        reference=report.reference,
        samples=report.samples,
        samples_needed=report.samples_needed,
        min_samples=report.min_samples,
        confidence=report.confidence,
        window=report.window,
        measures=[
            pb.MeasureExcess(
                name=e.name,
                source=e.source,
                deciding=e.deciding,
                margin=e.margin,
                samples=e.samples,
                pruned_mean=e.pruned_mean,
                reference_mean=e.reference_mean,
                reference=e.reference,
                estimate=e.estimate,
                lower=e.lower,
                upper=e.upper,
                samples_needed=e.samples_needed,
                damaged=e.damaged,
            )
            for e in report.measures
        ],
        request_id=request_id,
    )

