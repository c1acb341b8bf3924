"""The sisguard.v1.SISGuard service: protobuf in, core calls, protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.errors import InvalidArgument
from sisguard.server.grpc import explain_codec, tensors, verdict_codec
from sisguard.server.grpc.status import CallObserver, deadline_of, stream, unary
from sisguard.server.outputs import VariantOutput
from sisguard.server.pairs import Pair
from sisguard.server.service import Service
from sisguard.sis import ProgressEvent

_VARIANTS = {pb.VARIANT_UNSPECIFIED: "both", pb.BOTH: "both", pb.DENSE: "dense", pb.PRUNED: "pruned"}
_OUTPUT_KINDS = {"logits": pb.LOGITS, "probabilities": pb.PROBABILITIES, "scores": pb.SCORES}
_FEATURES = {"element": pb.ELEMENT, "pixel": pb.PIXEL, "patch": pb.PATCH, "explicit": pb.EXPLICIT}
_BASELINES = {"zeros": pb.ZEROS, "mean": pb.MEAN, "constant": pb.CONSTANT, "blur": pb.BLUR}


def variant_of(value: int) -> str:
    try:
        return _VARIANTS[value]
    except KeyError:
        raise InvalidArgument(f"variant {value} is not one of DENSE, PRUNED, BOTH") from None


def pair_info(pair: Pair, num_features: int) -> pb.PairInfo:
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
    return pb.PairInfo(
        name=pair.name,
        input_name=sig.input_name,
        input_shape=list(pair.input_shape),
        input_dtype=tensors.dtype_code(pair.input_dtype),
        output_name=sig.output_name,
        output_kind=_OUTPUT_KINDS[cfg.output_kind],
        num_outputs=pair.num_outputs,
        class_labels=list(cfg.class_labels),
        dense=model("dense"),
        pruned=model("pruned"),
        prune_ratio=pair.prune_ratio,
        max_batch_size=cfg.max_batch_size,
        explain_defaults=pb.ExplainDefaults(
            threshold=ex.threshold,
            threshold_relative=ex.threshold_relative,
            features=_FEATURES[ex.features],
            patch_height=ex.patch[0],
            patch_width=ex.patch[1],
            baseline=_BASELINES[ex.baseline],
            max_evaluations=ex.max_evaluations,
            num_features=num_features,
        ),
        image=pb.ImageDefaults(scale=cfg.image.scale, invert=cfg.image.invert),
        control=model("control") if pair.has_control else None,
        verdict_reference="control" if pair.has_control
        else ("calibration" if cfg.calibration_file is not None else "dense-only"),
    )


def variant_prediction(out: VariantOutput) -> pb.VariantPrediction:
    return pb.VariantPrediction(
        probabilities=tensors.from_numpy(out.probabilities),
        top1=out.top1.tolist(),
        top1_probability=out.top1_probability.tolist(),
    )


class SISGuardServicer(pb_grpc.SISGuardServicer):
    def __init__(self, service: Service, observer: CallObserver | None = None) -> None:
        self.service = service
        self.observer = observer

    @property
    def write_timeout(self) -> float | None:
        return self.service.limits.stream_write_timeout_seconds

    @unary("ListModels")
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ListModelsResponse:
        explainer = self.service.explainer
        return pb.ListModelsResponse(
            pairs=[pair_info(p, explainer.default_num_features(p)) for p in self.service.pairs.values()]
        )

    @unary("PairHealth")
    async def PairHealth(
        self, request: pb.PairHealthRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.PairHealthResponse:
        report = await self.service.pair_health(request.pair)
        return verdict_codec.response(report, rid)

    @unary("Predict")
    async def Predict(
        self, request: pb.PredictRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.PredictResponse:
        variant = variant_of(request.variant)
        pair = self.service.pair(request.pair)
        if not request.HasField("inputs"):
            raise InvalidArgument(f"inputs missing: expected a tensor [batch, {', '.join(map(str, pair.input_shape))}]")
        x = tensors.to_numpy(request.inputs, "inputs", self.service.limits.max_elements)
        result = await self.service.predict(pair.name, x, variant, deadline_of(context))
        resp = pb.PredictResponse(pair=result.pair, request_id=rid)
        if "dense" in result.outputs:
            resp.dense.CopyFrom(variant_prediction(result.outputs["dense"]))
        if "pruned" in result.outputs:
            resp.pruned.CopyFrom(variant_prediction(result.outputs["pruned"]))
        if result.top1_agree is not None and result.confidence_gap is not None:
            resp.top1_agree.extend(result.top1_agree.tolist())
            resp.confidence_gap.extend(result.confidence_gap.tolist())
        return resp

    @unary("Explain")
    async def Explain(
        self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ExplainResponse:
        x, opts = explain_codec.options(request, self.service.limits.max_elements)
        outcome = await self.service.explain(request.pair, x, opts, deadline_of(context))
        return explain_codec.response(outcome, rid, request.return_backselect)

    @stream("ExplainStream")
    async def ExplainStream(
        self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> AsyncIterator[pb.ExplainEvent]:
        x, opts = explain_codec.options(request, self.service.limits.max_elements)
        events: asyncio.Queue[pb.ExplainEvent] = asyncio.Queue()
        variants = {"dense": pb.DENSE, "pruned": pb.PRUNED}

        def progress(variant: str, ev: ProgressEvent) -> None:
            events.put_nowait(
                pb.ExplainEvent(
                    progress=pb.ExplainProgress(
                        variant=variants[variant],
                        round=ev.round,
                        step=ev.step,
                        features_left=ev.features_left,
                        evaluations=ev.evaluations,
                    )
                )
            )

        task = asyncio.ensure_future(
            self.service.explain(request.pair, x, opts, deadline_of(context), progress=progress)
        )
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
            task.cancel()  # a cancelled stream stops the explanation at its next step
        yield pb.ExplainEvent(result=explain_codec.response(outcome, rid, request.return_backselect))
