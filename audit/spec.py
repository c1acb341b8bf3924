"""Everything a worker needs to explain inputs, resolved once by the driver from the server config.

The spec carries the model *bytes* (checked against the config's sha256), so every worker — a
local process or a Ray actor on another node — runs exactly the files that were verified, without
needing the driver's filesystem. It is a plain frozen dataclass: it pickles to processes and
travels through Ray's object store once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sisguard.audit.errors import AuditError
from sisguard.audit.options import AuditOptions

#: ONNX Runtime's type strings for the input element types the audit feeds.
_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint8)": np.dtype(np.uint8),
}


@dataclass(frozen=True)
class ModelSpec:
    variant: str
    sha256: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class WorkerSpec:
    """A pair's models and the explanation settings of one audit."""

    pair: str
    models: tuple[ModelSpec, ...]
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    num_outputs: int
    output_kind: str
    groups: np.ndarray = field(repr=False)
    baseline_kind: str
    baseline_constant: float
    baseline_blur_sigma: float
    baseline_tensor: np.ndarray | None = field(repr=False)
    threshold: float
    threshold_relative: bool
    max_sis: int
    batch_k: int
    max_evaluations: int
    allow_partial: bool
    chunk_size: int
    min_iou: float
    min_rank_correlation: float | None
    require_cross_sufficiency: bool
    providers: tuple[str, ...]
    image_scale: float
    image_invert: bool

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(m.variant for m in self.models)

    @property
    def num_features(self) -> int:
        return int(self.groups.max()) + 1

    def fingerprint(self) -> dict[str, object]:
        """What must not change between an audit and its resumption (goes into the manifest)."""
        return {
            "pair": self.pair,
            "models": {m.variant: m.sha256 for m in self.models},
            "input_shape": list(self.input_shape),
            "input_dtype": self.input_dtype.name,
            "groups_sha256": hashlib.sha256(np.ascontiguousarray(self.groups).tobytes()).hexdigest(),
            "num_features": self.num_features,
            "baseline": self.baseline_kind,
            "baseline_constant": self.baseline_constant,
            "baseline_blur_sigma": self.baseline_blur_sigma,
            "threshold": self.threshold,
            "threshold_relative": self.threshold_relative,
            "max_sis": self.max_sis,
            "batch_k": self.batch_k,
            "max_evaluations": self.max_evaluations,
            "allow_partial": self.allow_partial,
            "divergence": {
                "min_iou": self.min_iou,
                "min_rank_correlation": self.min_rank_correlation,
                "require_cross_sufficiency": self.require_cross_sufficiency,
            },
        }


def _signature(data: bytes, path: Path, input_name: str | None, output_name: str | None) -> tuple:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises several types for files it cannot load
        raise AuditError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if len(inputs) != 1:
        raise AuditError(
            f"{path}: the model takes {len(inputs)} inputs ({', '.join(inputs)}); audits support models "
            "with one input of a fixed shape"
        )
    iname = input_name or (next(iter(inputs)) if len(inputs) == 1 else None)
    oname = output_name or (next(iter(outputs)) if len(outputs) == 1 else None)
    if oname is None:  # as the server does: the only float [batch, classes] output (scikit-learn's probabilities)
        floats = [n for n, o in outputs.items() if o.type in ("tensor(float)", "tensor(double)") and len(o.shape) == 2]
        oname = floats[0] if len(floats) == 1 else None
    if iname not in inputs or oname not in outputs:
        raise AuditError(
            f"{path}: cannot tell which input/output to use (inputs {list(inputs)}, outputs {list(outputs)}); "
            "set input_name/output_name in the pair config"
        )
    dims = list(inputs[iname].shape)[1:]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise AuditError(f"{path}: input {iname} must have fixed dimensions after the batch axis, got {dims}")
    dtype = _DTYPES.get(inputs[iname].type)
    if dtype is None:
        raise AuditError(f"{path}: input type {inputs[iname].type} is not supported")
    out_dims = list(outputs[oname].shape)[1:]
    num_outputs = int(out_dims[0]) if out_dims and isinstance(out_dims[0], int) else 1
    return iname, oname, tuple(int(d) for d in dims), dtype, num_outputs


def _groups(cfg, shape: tuple[int, ...]) -> np.ndarray:  # type: ignore[no-untyped-def]
    from sisguard.sis import element_groups, explicit_groups, patch_groups, pixel_groups

    if cfg.features == "element":
        return element_groups(shape)
    if cfg.features == "pixel":
        return pixel_groups(shape)
    if cfg.features == "patch":
        return patch_groups(shape, *cfg.patch)
    if cfg.group_map_file is None:
        raise AuditError("features=explicit needs explain.group_map_file in the pair config")
    return explicit_groups(np.load(cfg.group_map_file), shape)


def build_spec(options: AuditOptions) -> WorkerSpec:
    """Load the server config, pick the pair, read and verify its models, resolve the explain settings."""
    from sisguard.server.config import ConfigError, load_settings
    from sisguard.sis import InvalidInput, tensor_baseline

    try:
        settings = load_settings(options.config)
    except ConfigError as exc:
        raise AuditError(str(exc)) from exc
    if not settings.pairs:
        raise AuditError(f"config {options.config or 'bundled'} lists no pairs")
    names = [p.name for p in settings.pairs]
    if options.pair is None:
        pair = settings.pairs[0]
    elif options.pair in names:
        pair = settings.pairs[names.index(options.pair)]
    else:
        raise AuditError(f"pair {options.pair!r} is not in the config; it has {', '.join(names)}")

    files = {"dense": (pair.dense, pair.dense_sha256), "pruned": (pair.pruned, pair.pruned_sha256)}
    if pair.control is not None:
        files["control"] = (pair.control, pair.control_sha256)
    models: list[ModelSpec] = []
    signatures = {}
    for variant, (path, expected) in files.items():
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuditError(f"{path}: cannot read the {variant} model: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if expected and digest != expected:
            raise AuditError(f"{path}: sha256 mismatch: expected {expected}, file has {digest}")
        signatures[variant] = _signature(data, Path(path), pair.input_name, pair.output_name)
        models.append(ModelSpec(variant, digest, data))
    first = signatures["dense"]
    for variant, sig in signatures.items():
        if sig[2:] != first[2:]:
            raise AuditError(
                f"pair {pair.name}: the {variant} model takes {list(sig[2])} {sig[3]} with {sig[4]} outputs, "
                f"the dense model {list(first[2])} {first[3]} with {first[4]}"
            )
    iname, oname, shape, dtype, num_outputs = first
    cfg = pair.explain
    try:
        groups = _groups(cfg, shape)
        tensor = None
        if cfg.baseline == "mean":
            if cfg.mean_file is None:
                raise AuditError(f"pair {pair.name}: baseline=mean needs explain.mean_file")
            tensor = tensor_baseline(np.load(cfg.mean_file), shape, dtype)
    except InvalidInput as exc:
        raise AuditError(f"pair {pair.name}: {exc}") from exc
    if cfg.baseline == "blur" and (len(shape) < 2 or dtype.kind != "f"):
        raise AuditError(f"pair {pair.name}: baseline=blur needs floating-point inputs with two spatial axes")
    threshold = cfg.threshold if options.threshold is None else options.threshold
    if options.threshold is not None and pair.output_kind in ("logits", "probabilities") and not 0 <= threshold <= 1:
        raise AuditError(
            f"threshold tau {threshold:g} is outside [0, 1]: pair {pair.name} scores are probabilities"
        )
    return WorkerSpec(
        pair=pair.name,
        models=tuple(models),
        input_name=iname,
        output_name=oname,
        input_shape=shape,
        input_dtype=dtype,
        num_outputs=num_outputs,
        output_kind=pair.output_kind,
        groups=np.ascontiguousarray(groups, dtype=np.int64),
        baseline_kind=cfg.baseline,
        baseline_constant=float(cfg.baseline_constant),
        baseline_blur_sigma=float(cfg.baseline_blur_sigma),
        baseline_tensor=tensor,
        threshold=float(threshold),
        threshold_relative=bool(cfg.threshold_relative and options.threshold is None),
        max_sis=options.max_sis or cfg.max_sis,
        batch_k=options.batch_k,
        max_evaluations=options.max_evaluations or cfg.max_evaluations,
        allow_partial=options.allow_partial,
        chunk_size=pair.max_batch_size,
        min_iou=cfg.divergence.min_iou,
        min_rank_correlation=cfg.divergence.min_rank_correlation,
        require_cross_sufficiency=cfg.divergence.require_cross_sufficiency,
        providers=("cuda", "cpu") if options.device == "cuda" or options.num_gpus else ("cpu",),
        image_scale=pair.image.scale,
        image_invert=pair.image.invert,
    )
