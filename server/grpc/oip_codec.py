"""Open Inference Protocol (KServe v2) ModelInfer messages to the data plane's types and back."""

from __future__ import annotations

import numpy as np

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.server.core.dataplane import InferRequest, InferResult
from sisguard.server.errors import InvalidArgument
from sisguard.server.runtime.model import Signature
from sisguard.wire import check_shape, decode, describe_shape, from_values, oip_dtype, oip_name

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


def infer_request(request: ip.ModelInferRequest, max_elements: int) -> InferRequest:
    """The input tensors of a ModelInferRequest, decoded (names are checked by the data plane)."""
    if not request.inputs:
        raise InvalidArgument("expected at least one input, got 0")
    if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(request.raw_input_contents)} entries for {len(request.inputs)} "
            f"input{'s' if len(request.inputs) > 1 else ''}"
        )
    tensors: dict[str, np.ndarray] = {}
    for i, spec in enumerate(request.inputs):
        if spec.name in tensors:
            raise InvalidArgument(f"input {spec.name} is sent twice")
        raw = request.raw_input_contents[i] if request.raw_input_contents else None
        tensors[spec.name] = _input(spec, raw, max_elements)
    first, *rest = request.inputs
    return InferRequest(
        model_name=request.model_name,
        model_version=request.model_version,
        input_name=first.name,
        x=tensors[first.name],
        output_names=[out.name for out in request.outputs],
        extra_inputs={s.name: tensors[s.name] for s in rest},
    )


def _input(
    spec: ip.ModelInferRequest.InferInputTensor, raw: bytes | None, max_elements: int
) -> np.ndarray:
    dtype = oip_dtype(spec.datatype, f"input {spec.name}")
    count = check_shape(spec.shape, f"input {spec.name}", max_elements)  # before anything copies the shape
    shape = list(spec.shape)
    if raw is not None:
        x = decode(raw, dtype, shape, f"input {spec.name}", max_elements)
    else:
        field = _CONTENTS_FIELD.get(spec.datatype)
        if field is None:
            raise InvalidArgument(f"datatype {spec.datatype} must be sent as raw_input_contents")
        values = getattr(spec.contents, field)
        if len(values) != count:
            raise InvalidArgument(
                f"input {spec.name}: {len(values)} values in {field} for shape {describe_shape(shape)}: "
                f"expected {count}"
            )
        x = from_values(values, dtype, shape, f"input {spec.name}")
    return x


def infer_response(result: InferResult, oip_id: str) -> ip.ModelInferResponse:
    """The model's raw output as FP32; ``oip_id`` is the request's own ``id`` field, echoed."""
    raw = result.raw
    resp = ip.ModelInferResponse(model_name=result.model_name, model_version="1", id=oip_id)
    resp.outputs.add(name=result.output_name, datatype="FP32", shape=list(raw.shape))
    resp.raw_output_contents.append(np.ascontiguousarray(raw, dtype="<f4").tobytes())
    return resp


def metadata_response(name: str, sig: Signature, num_outputs: int) -> ip.ModelMetadataResponse:
    T = ip.ModelMetadataResponse.TensorMetadata
    specs = [(sig.input_name, sig.input_dtype, sig.input_shape)] if sig.plan is None else [
        (i.name, i.dtype, i.shape) for i in sig.plan.all
    ]
    return ip.ModelMetadataResponse(
        name=name,
        versions=["1"],
        platform="onnxruntime_onnx",
        inputs=[T(name=n, datatype=oip_name(d), shape=[-1, *s]) for n, d, s in specs],
        outputs=[T(name=sig.output_name, datatype="FP32", shape=[-1, num_outputs])],
    )

