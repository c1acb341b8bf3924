"""The Open Inference Protocol (KServe v2) service over the same pairs: decode, one data-plane call, encode.

Each pair's models appear as ``<pair>.dense``, ``<pair>.pruned`` (and ``<pair>.control``);
ModelInfer returns the model's raw output (logits, probabilities or scores as the file produces them).
"""

from __future__ import annotations

import grpc

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.grpc import oip_codec
from sisguard.server.grpc.status import CallObserver, deadline_of, unary

SERVER_NAME = "sisguard"
SERVER_VERSION = "0.1.0"


class InferenceServicer(ip_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, observer: CallObserver | None = None) -> None:
        self.dataplane = dataplane
        self.observer = observer

    @property
    def write_timeout(self) -> float | None:
        return self.dataplane.limits.stream_write_timeout_seconds

    @unary("ServerLive")
    async def ServerLive(
        self, request: ip.ServerLiveRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerLiveResponse:
        return ip.ServerLiveResponse(live=True)

    @unary("ServerReady")
    async def ServerReady(
        self, request: ip.ServerReadyRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerReadyResponse:
        return ip.ServerReadyResponse(ready=self.dataplane.ready)

    @unary("ModelReady")
    async def ModelReady(
        self, request: ip.ModelReadyRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelReadyResponse:
        self.dataplane.model(request.name)  # NOT_FOUND for a name that is no model
        return ip.ModelReadyResponse(ready=self.dataplane.ready)

    @unary("ServerMetadata")
    async def ServerMetadata(
        self, request: ip.ServerMetadataRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerMetadataResponse:
        return ip.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    @unary("ModelMetadata")
    async def ModelMetadata(
        self, request: ip.ModelMetadataRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelMetadataResponse:
        pair, _, sig = self.dataplane.model(request.name)
        return oip_codec.metadata_response(request.name, sig, pair.num_outputs)

    @unary("ModelInfer")
    async def ModelInfer(
        self, request: ip.ModelInferRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelInferResponse:
        decoded = oip_codec.infer_request(request, self.dataplane.limits.max_elements)
        result = await self.dataplane.infer(decoded, deadline_of(context))
        return oip_codec.infer_response(result, request.id)
