"""The Open Inference Protocol (KServe v2) service over the same pairs.

Each pair's models appear as ``<pair>.dense`` and ``<pair>.pruned``; ModelInfer returns the
model's raw output (logits, probabilities or scores as the file produces them).
"""

from __future__ import annotations

import grpc
import numpy as np

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.server.errors import InvalidArgument
from sisguard.server.grpc import tensors
from sisguard.server.grpc.status import CallObserver, deadline_of, unary
from sisguard.server.service import Service

SERVER_NAME = "sisguard"
SERVER_VERSION = "0.1.0"

# Typed contents field for each datatype (FP16 travels only as raw bytes).
_CONTENTS_FIELD = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "BOOL": "bool_contents",
}


class InferenceServicer(ip_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: Service, observer: CallObserver | None = None) -> None:
        self.service = service
        self.observer = observer

    @property
    def write_timeout(self) -> float | None:
        return self.service.limits.stream_write_timeout_seconds

    @unary("ServerLive")
    async def ServerLive(
        self, request: ip.ServerLiveRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerLiveResponse:
        return ip.ServerLiveResponse(live=True)

    @unary("ServerReady")
    async def ServerReady(
        self, request: ip.ServerReadyRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerReadyResponse:
        return ip.ServerReadyResponse(ready=self.service.ready)

    @unary("ModelReady")
    async def ModelReady(
        self, request: ip.ModelReadyRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelReadyResponse:
        self.service.model_by_infer_name(request.name)
        return ip.ModelReadyResponse(ready=self.service.ready)

    @unary("ServerMetadata")
    async def ServerMetadata(
        self, request: ip.ServerMetadataRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ServerMetadataResponse:
        return ip.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    @unary("ModelMetadata")
    async def ModelMetadata(
        self, request: ip.ModelMetadataRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelMetadataResponse:
        pair, variant = self.service.model_by_infer_name(request.name)
        sig = pair.models[variant].signature
        T = ip.ModelMetadataResponse.TensorMetadata
        return ip.ModelMetadataResponse(
            name=request.name,
            versions=["1"],
            platform="onnxruntime_onnx",
            inputs=[
                T(name=sig.input_name, datatype=tensors.oip_dtype_name(sig.input_dtype), shape=[-1, *sig.input_shape])
            ],
            outputs=[T(name=sig.output_name, datatype="FP32", shape=[-1, pair.num_outputs])],
        )

    @unary("ModelInfer")
    async def ModelInfer(
        self, request: ip.ModelInferRequest, context: grpc.aio.ServicerContext, rid: str
    ) -> ip.ModelInferResponse:
        pair, variant = self.service.model_by_infer_name(request.model_name)
        if request.model_version not in ("", "1"):
            raise InvalidArgument(f"model {request.model_name} has version 1 only, not {request.model_version!r}")
        sig = pair.models[variant].signature
        x = self._input(request, sig.input_name)
        for out in request.outputs:
            if out.name != sig.output_name:
                raise InvalidArgument(
                    f"unknown output {out.name!r}; model {request.model_name} has {sig.output_name!r}"
                )
        self.service.check_rows(pair, x)
        raw = await self.service.run_model(pair, variant, x, deadline_of(context))
        resp = ip.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
        resp.outputs.add(name=sig.output_name, datatype="FP32", shape=list(raw.shape))
        resp.raw_output_contents.append(np.ascontiguousarray(raw, dtype="<f4").tobytes())
        return resp

    def _input(self, request: ip.ModelInferRequest, expected_name: str) -> np.ndarray:
        if len(request.inputs) != 1:
            raise InvalidArgument(f"expected exactly one input named {expected_name!r}, got {len(request.inputs)}")
        spec = request.inputs[0]
        if spec.name != expected_name:
            raise InvalidArgument(f"unknown input {spec.name!r}; expected {expected_name!r}")
        dtype = tensors.OIP_DTYPES.get(spec.datatype)
        if dtype is None:
            raise InvalidArgument(
                f"datatype {spec.datatype!r} is not supported; expected one of {', '.join(tensors.OIP_DTYPES)}"
            )
        limit = self.service.limits.max_elements
        count = tensors.check_shape(spec.shape, f"input {spec.name}", limit)  # before anything copies the shape
        shape = list(spec.shape)
        if request.raw_input_contents:
            if len(request.raw_input_contents) != 1:
                raise InvalidArgument(f"raw_input_contents has {len(request.raw_input_contents)} entries for 1 input")
            return tensors.decode(request.raw_input_contents[0], dtype, shape, f"input {spec.name}", limit)
        field = _CONTENTS_FIELD.get(spec.datatype)
        if field is None:
            raise InvalidArgument(f"datatype {spec.datatype} must be sent as raw_input_contents")
        values = getattr(spec.contents, field)
        if len(values) != count:
            raise InvalidArgument(
                f"input {spec.name}: {len(values)} values in {field} for shape {tensors.describe_shape(shape)}: "
                f"expected {count}"
            )
        return tensors.from_values(values, dtype, shape, f"input {spec.name}")
