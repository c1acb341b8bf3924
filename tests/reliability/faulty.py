"""An ONNX model that fails at run time on chosen inputs, for the fault-isolation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

POISON = 1000.0  # any input element above this makes the faulty model fail at run time


def faulty_model(path: Path, seed: int = 3) -> Path:
    """A linear [batch, 1, 8, 8] -> [batch, 10] model that raises inside ONNX Runtime when any
    element of its batch exceeds POISON: a value-dependent Reshape to [-1, 65] cannot fit
    [batch, 64] for batch < 65."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(64, 10)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(10,)).astype(np.float32), "b")
    consts = [
        numpy_helper.from_array(np.array(POISON, np.float32), "poison"),
        numpy_helper.from_array(np.array(64, np.int64), "width"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("ReduceMax", ["input"], ["peak"], keepdims=0),
        helper.make_node("Greater", ["peak", "poison"], ["bad"]),
        helper.make_node("Cast", ["bad"], ["bad_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["width", "bad_i"], ["cols"]),
        helper.make_node("Unsqueeze", ["cols", "axis0"], ["cols1"]),
        helper.make_node("Concat", ["minus_one", "cols1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["flat", "shape"], ["rows"]),
        helper.make_node("MatMul", ["rows", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "faulty",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=[w, b, *consts],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
