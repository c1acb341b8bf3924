"""The bundled pair's files carry nothing of the machine they were made on."""

from __future__ import annotations

from importlib import resources

import onnx
import pytest

MODELS = resources.files("sisguard.server") / "models" / "digits"


@pytest.mark.parametrize("name", ["dense.onnx", "pruned.onnx", "control.onnx"])
def test_bundled_onnx_files_hold_no_paths_or_stack_traces(name: str) -> None:
    data = (MODELS / name).read_bytes()
    for marker in (b"/home/", b"/root/", b"/tmp/", b"/work/", b"site-packages", b'File "'):
        assert marker not in data, f"{name} contains {marker!r}"
    model = onnx.load_from_string(data)
    props = [p.key for p in model.metadata_props]
    props += [p.key for node in model.graph.node for p in node.metadata_props]
    assert not [k for k in props if "stack_trace" in k]
