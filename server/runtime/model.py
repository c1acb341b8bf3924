"""One ONNX model: its session, signature, file facts, and a synchronous ``run``.

``run`` is called from the batcher's worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from sisguard.server.runtime.providers import ProviderChoice, create_session

log = logging.getLogger(__name__)

# ONNX Runtime's type strings for the element types we serve.
ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}


class ModelLoadError(Exception):
    """A model file cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Signature:
    """Input and output of a model, one sample (no batch axis)."""

    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    output_name: str
    output_shape: tuple[int, ...]  # per sample; () for a scalar score


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    parameter_count: int
    nonzero_parameter_count: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_facts(path: Path) -> FileFacts:
    """Checksum and parameter counts (every initializer) of an ONNX file."""
    model = onnx.load(str(path), load_external_data=False)
    total = nonzero = 0
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        total += arr.size
        nonzero += int(np.count_nonzero(arr))
    return FileFacts(sha256_of(path), total, nonzero)


def _pick(kind: str, names: list[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ModelLoadError(f"{path}: has no {kind} named {wanted!r} (it has {', '.join(names)})")
        return wanted
    if len(names) != 1:
        raise ModelLoadError(
            f"{path}: has {len(names)} {kind}s ({', '.join(names)}); set {kind}_name in the pair config"
        )
    return names[0]


def _static_shape(dims: list[object], path: Path, what: str) -> tuple[int, ...]:
    """Per-sample shape: every dimension after the batch axis must be fixed."""
    if not dims:
        raise ModelLoadError(f"{path}: {what} has no batch axis (rank 0)")
    rest = dims[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        raise ModelLoadError(f"{path}: {what} must have fixed dimensions after the batch axis, got {dims}")
    return tuple(int(d) for d in rest)  # type: ignore[call-overload]


class ModelRuntime:
    """An ONNX Runtime session for one file with the signature sisguard needs."""

    def __init__(
        self,
        path: Path,
        *,
        choice: ProviderChoice,
        intra_op_threads: int,
        inter_op_threads: int,
        input_name: str | None,
        output_name: str | None,
        expected_sha256: str | None,
    ) -> None:
        self.path = path
        if not path.is_file():
            raise ModelLoadError(f"{path}: file not found")
        try:
            self.facts = file_facts(path)
        except Exception as exc:  # onnx raises several types for corrupt files
            raise ModelLoadError(f"{path}: not a readable ONNX model ({exc.__class__.__name__})") from exc
        if expected_sha256 and self.facts.sha256 != expected_sha256:
            raise ModelLoadError(f"{path}: sha256 mismatch: expected {expected_sha256}, file has {self.facts.sha256}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session, self.cuda_reason = create_session(str(path), choice, options)
        except Exception as exc:
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        self.provider = self.session.get_providers()[0]
        self.signature = self._signature(input_name, output_name)

    def _signature(self, input_name: str | None, output_name: str | None) -> Signature:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        iname = _pick("input", list(inputs), input_name, self.path)
        oname = _pick("output", list(outputs), output_name, self.path)
        dtype = ORT_DTYPES.get(inputs[iname].type)
        if dtype is None:
            raise ModelLoadError(f"{self.path}: input type {inputs[iname].type} is not supported")
        if outputs[oname].type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            raise ModelLoadError(f"{self.path}: output {oname} must be floating point, is {outputs[oname].type}")
        in_shape = _static_shape(list(inputs[iname].shape), self.path, f"input {iname}")
        out_shape = _static_shape(list(outputs[oname].shape), self.path, f"output {oname}")
        if len(out_shape) > 1:
            raise ModelLoadError(f"{self.path}: output {oname} must be [batch] or [batch, classes], got {out_shape}")
        return Signature(iname, in_shape, dtype, oname, out_shape)

    @property
    def num_outputs(self) -> int:
        return self.signature.output_shape[0] if self.signature.output_shape else 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs for a batch, always ``[rows, num_outputs]`` float32."""
        (out,) = self.session.run([self.signature.output_name], {self.signature.input_name: batch})
        out = np.asarray(out, dtype=np.float32)
        return out.reshape(batch.shape[0], self.num_outputs)

    def warm_up(self, max_batch_size: int) -> None:
        """Run one row and one full batch so the first requests pay no allocation cost."""
        sig = self.signature
        for rows in sorted({1, max_batch_size}):
            self.run(np.zeros((rows, *sig.input_shape), dtype=sig.input_dtype))
