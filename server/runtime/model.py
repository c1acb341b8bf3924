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

from sisguard.server.runtime.inputs import (
    InputPlan,
    InputPlanError,
    ModelInput,
    RuleConfig,
    embedding_vocab_size,
    plan_inputs,
)
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


#: dynamic axes are this long in the warm-up runs
WARM_UP_LENGTH = 8


class ModelLoadError(Exception):
    """A model file cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Signature:
    """Input and output of a model, one sample (no batch axis).

    ``input_*`` describe the input carrying the features (``-1`` marks a dynamic axis); ``plan``
    says how every input of the model is fed (sisguard.server.runtime.inputs)."""

    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    output_name: str
    output_shape: tuple[int, ...]  # per sample; () for a scalar score
    plan: InputPlan | None = None


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


def _pick_output(names: list[str], outputs: dict[str, object], wanted: str | None, path: Path) -> str:
    """The output to read: the configured one, the only one, or the only float ``[batch, classes]`` one
    (a scikit-learn export's ``probabilities`` next to its integer ``label``)."""
    if wanted is not None or len(names) == 1:
        return _pick("output", names, wanted, path)
    floats = [
        n for n in names
        if outputs[n].type in ("tensor(float)", "tensor(double)", "tensor(float16)")  # type: ignore[attr-defined]
        and len(outputs[n].shape) == 2  # type: ignore[attr-defined]
    ]
    if len(floats) == 1:
        return floats[0]
    raise ModelLoadError(
        f"{path}: has {len(names)} outputs ({', '.join(names)}) and {len(floats) or 'no'} floating-point "
        f"[batch, classes] ones; set output_name in the pair config"
    )


def _input_shape(dims: list[object], path: Path, what: str) -> tuple[int, ...]:
    """Per-sample shape of an input: fixed dimensions, or -1 for a dynamic (named or unknown) axis."""
    if not dims:
        raise ModelLoadError(f"{path}: {what} has no batch axis (rank 0)")
    return tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in dims[1:])


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
        input_rules: list[RuleConfig] | None = None,
        pad_token_id: int = 0,
        vocab_size: int | None = None,
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
        self.signature = self._signature(input_name, output_name, input_rules, pad_token_id, vocab_size)
        self.plan: InputPlan = self.signature.plan  # type: ignore[assignment]

    def _signature(
        self,
        input_name: str | None,
        output_name: str | None,
        rules: list[RuleConfig] | None,
        pad_token_id: int,
        vocab_size: int | None,
    ) -> Signature:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        specs = []
        for name, i in inputs.items():
            dtype = ORT_DTYPES.get(i.type)
            if dtype is None:
                raise ModelLoadError(f"{self.path}: input {name} has type {i.type}, which is not supported")
            specs.append(ModelInput(name, dtype, _input_shape(list(i.shape), self.path, f"input {name}"), "features"))
        try:
            plan = plan_inputs(specs, rules, input_name, pad_token_id, None, self.path)
        except InputPlanError as exc:
            raise ModelLoadError(str(exc)) from None
        if vocab_size is None and plan.features.dtype.kind in "iu":
            vocab_size = embedding_vocab_size(onnx.load(str(self.path), load_external_data=False), plan.features.name)
        if vocab_size is not None:
            plan = InputPlan(plan.features, plan.others, plan.pad_token_id, vocab_size)
        oname = _pick_output(list(outputs), outputs, output_name, self.path)
        if outputs[oname].type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            raise ModelLoadError(f"{self.path}: output {oname} must be floating point, is {outputs[oname].type}")
        out_shape = _static_shape(list(outputs[oname].shape), self.path, f"output {oname}")
        if len(out_shape) > 1:
            raise ModelLoadError(f"{self.path}: output {oname} must be [batch] or [batch, classes], got {out_shape}")
        f = plan.features
        return Signature(f.name, f.shape, f.dtype, oname, out_shape, plan)

    @property
    def num_outputs(self) -> int:
        return self.signature.output_shape[0] if self.signature.output_shape else 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Outputs for a batch, always ``[rows, num_outputs]`` float32."""
        (out,) = self.session.run([self.signature.output_name], self.plan.feeds(batch))
        out = np.asarray(out, dtype=np.float32)
        return out.reshape(batch.shape[0], self.num_outputs)

    def warm_up(self, max_batch_size: int) -> None:
        """Run one row and one full batch so the first requests pay no allocation cost."""
        for rows in sorted({1, max_batch_size}):
            self.run(self.plan.example(rows, WARM_UP_LENGTH))
