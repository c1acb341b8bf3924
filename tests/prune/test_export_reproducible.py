"""Exported ONNX files are byte-reproducible wherever the code lives: the exporter's stack traces
(absolute source paths) are stripped, so a pinned sha256 survives moving the checkout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import onnx
import torch

from sisguard.prune.export import export_onnx, sha256_file

SOURCE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))
'''


def _net_from(folder: Path) -> torch.nn.Module:
    """The same model class, defined in a file under ``folder`` (as in two checkouts)."""
    folder.mkdir(parents=True)
    (folder / "netdef.py").write_text(SOURCE)
    spec = importlib.util.spec_from_file_location("netdef", folder / "netdef.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["netdef"] = module
    try:
        spec.loader.exec_module(module)
        torch.manual_seed(0)
        return module.Net()
    finally:
        del sys.modules["netdef"]


def test_the_same_model_from_two_locations_exports_the_same_bytes(tmp_path: Path) -> None:
    a = _net_from(tmp_path / "checkout-a" / "src")
    b = _net_from(tmp_path / "somewhere" / "else" / "src")
    b.load_state_dict(a.state_dict())
    export_onnx(a, (1, 8, 8), tmp_path / "a.onnx")
    export_onnx(b, (1, 8, 8), tmp_path / "b.onnx")
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx")
    data = (tmp_path / "a.onnx").read_bytes()
    assert b"checkout-a" not in data and str(tmp_path).encode() not in data
    model = onnx.load(tmp_path / "a.onnx")
    keys = {kv.key for node in model.graph.node for kv in node.metadata_props}
    assert not any(k.endswith("stack_trace") for k in keys)
    onnx.checker.check_model(model)
