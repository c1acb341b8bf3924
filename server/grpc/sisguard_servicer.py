"""The sisguard.v1.SISGuard service: decode, one data-plane call, encode."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.core.dataplane import DataPlane, ExplainProgress
from sisguard.server.grpc import codec
from sisguard.server.grpc.status import CallObserver, deadline_of, stream, unary


class SISGuardServicer(pb_grpc.SISGuardServicer):
    def __init__(self, dataplane: DataPlane, observer: CallObserver | None = None) -> None:
        self.dataplane = dataplane
        self.observer = observer
        self.max_elements = dataplane.limits.max_elements

    @property
    def write_timeout(self) -> float | None:
        return self.dataplane.limits.stream_write_timeout_seconds

    @unary("ListModels")
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ListModelsResponse:
        return codec.list_response(self.dataplane.list_pairs())

    @unary("PairHealth")
    async def PairHealth(
        self, request: pb.PairHealthRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.PairHealthResponse:
        return codec.health_response(await self.dataplane.pair_health(request.pair), rid)

    @unary("Predict")
    async def Predict(
        self, request: pb.PredictRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.PredictResponse:
        x, variant = codec.predict_request(request, self.max_elements)
        result = await self.dataplane.predict(request.pair, x, variant, deadline_of(context))
        return codec.predict_response(result, rid)

    @unary("Explain")
    async def Explain(
        self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> pb.ExplainResponse:
        x, opts = codec.explain_request(request, self.max_elements)
        outcome = await self.dataplane.explain(request.pair, x, opts, deadline_of(context))
        return codec.explain_response(outcome, rid, request.return_backselect)

    @stream("ExplainStream")
    async def ExplainStream(
        self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> AsyncIterator[pb.ExplainEvent]:
        x, opts = codec.explain_request(request, self.max_elements)
        events = self.dataplane.explain_stream(request.pair, x, opts, deadline_of(context))
        async with contextlib.aclosing(events):  # a cancelled stream stops the explanation at its next step
            async for item in events:
                if isinstance(item, ExplainProgress):
                    yield codec.progress_event(item)
                else:
                    yield pb.ExplainEvent(result=codec.explain_response(item, rid, request.return_backselect))
