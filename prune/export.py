"""ONNX export of a torch model and the check against torch.

The exported graph has one input ``input`` ``[N, *input_shape]`` float32 and one output
``logits`` ``[N, classes]`` with a dynamic batch axis, opset ≥ 17, weights stored inside
the file. :func:`check_onnx` runs it with ONNX Runtime on real inputs and compares with
torch.

Example:
    >>> from sisguard.prune.models import digits_cnn
    >>> import tempfile, numpy as np, pathlib
    >>> net = digits_cnn().eval()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.onnx"
    >>> export_onnx(net, (1, 8, 8), path)
    >>> check_onnx(path, net, np.zeros((3, 1, 8, 8), np.float32)) < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sisguard.prune.errors import PruneError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 18


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path,
                opset: int = DEFAULT_OPSET) -> None:
    """Write ``model`` (in eval mode) to ``path`` as a self-contained ONNX file."""
    if opset < 17:
        raise PruneError(f"ONNX opset must be >= 17, got {opset}")
    was_training = model.training
    model.eval()
    example = torch.zeros(2, *input_shape)
    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True, verbose=False,
            )
            if program is None:
                raise PruneError("torch.onnx.export returned no program")
            program.save(str(path), external_data=False)
        reproducible(path)
    finally:
        quiet.setLevel(level)
        model.train(was_training)


def _path_dependent(key: str, value: str) -> bool:
    return key.endswith("stack_trace") or 'File "' in value


def _drop_path_dependent(holder: object) -> None:
    props = holder.metadata_props  # type: ignore[attr-defined]
    keep = [(kv.key, kv.value) for kv in props if not _path_dependent(kv.key, kv.value)]
    del props[:]
    for key, value in keep:
        props.add(key=key, value=value)


def reproducible(path: str | Path) -> None:
    """Rewrite an exported file without what depends on where the code lives.

    torch's exporter records a Python stack trace per node (``pkg.torch.onnx.stack_trace``, with
    absolute source paths); the same model exported from two checkouts would differ in bytes and
    fail a pinned sha256. Those entries (and node doc strings, which can carry the same) go; the
    graph and its weights are untouched.
    """
    import onnx

    proto = onnx.load(str(path))

    def clean(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            _drop_path_dependent(node)
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    clean(attr.g)
                for sub in attr.graphs:
                    clean(sub)

    clean(proto.graph)
    for fn in proto.functions:
        for node in fn.node:
            _drop_path_dependent(node)
            node.doc_string = ""
    _drop_path_dependent(proto)
    _drop_path_dependent(proto.graph)
    onnx.save(proto, str(path))


def make_session(path: str | Path, threads: int = 1):
    """A CPU ONNX Runtime session for ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session: object, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Outputs of an ONNX Runtime ``session`` for all of ``x``, in batches."""
    outs = [session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + batch_size]})[0]  # type: ignore[attr-defined]
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def check_onnx(path: str | Path, model: nn.Module, x: np.ndarray, atol: float = 1e-4) -> float:
    """Run the ONNX file and torch on ``x``; return the largest absolute difference.

    Raises:
        PruneError: the outputs differ by more than ``atol`` (relative to the logit scale).
    """
    from sisguard.prune.train import predict_logits

    expected = predict_logits(model, x)
    got = run_onnx(make_session(path), x)
    if got.shape != expected.shape:
        raise PruneError(f"ONNX model {str(path)!r} returns shape {got.shape}, torch {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if diff > atol * scale:
        raise PruneError(f"ONNX model {str(path)!r} differs from torch by {diff:.3g} (> {atol * scale:.3g})")
    return diff


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
