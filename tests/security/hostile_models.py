"""A small ONNX model with an integer input: token ids looked up in an embedding of 100 rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB = 100
TOKENS = 8
CLASSES = 10


def token_model(path: Path, seed: int = 0) -> Path:
    """``ids [batch, 8] int64`` -> ``logits [batch, 10]``: mean of the ids' embedding rows (Gather)."""
    table = np.random.default_rng(seed).normal(size=(VOCAB, CLASSES)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
            helper.make_node("ReduceMean", ["emb", "axes"], ["logits"], keepdims=0),
        ],
        "tokens",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", TOKENS])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1]), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
