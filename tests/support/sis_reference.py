"""The independent SIS reference of tests/sis, extended to models with several inputs: the score
of a masked copy of the features is the model run in-process with ONNX Runtime on that copy and the
other inputs as the pair feeds them (derived by presence, or passed through unchanged)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

_spec = importlib.util.spec_from_file_location(
    "sis_reference", Path(__file__).resolve().parent.parent / "sis" / "test_explain_reference.py"
)
_ref = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules.setdefault("sis_reference", _ref)
_spec.loader.exec_module(_ref)  # type: ignore[union-attr]
ref_find_sis = _ref.ref_find_sis
RefResult = _ref.RefResult


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def multi_input_score(
    sess: ort.InferenceSession,
    feature: str,
    target: int,
    *,
    derived: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    passthrough: Mapping[str, np.ndarray] | None = None,
    output: str | None = None,
    softmax: bool = False,
) -> Callable[[np.ndarray], float]:
    """``f(z)``: the probability of ``target`` for one features tensor ``z`` (no batch axis)."""

    def f(z: np.ndarray) -> float:
        feeds = {feature: z[None]}
        for name, fn in (derived or {}).items():
            feeds[name] = fn(z)[None]
        for name, value in (passthrough or {}).items():
            feeds[name] = value[None]
        out = sess.run([output] if output else None, feeds)[0][0].astype(np.float64)
        if softmax:
            e = np.exp(out - out.max())
            out = e / e.sum()
        return float(out[target])

    return f
