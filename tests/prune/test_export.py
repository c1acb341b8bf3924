"""ONNX export: contract (names, opset, dynamic batch), smaller FT weights, agreement with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from sisguard.prune.errors import PruneError
from sisguard.prune.export import check_onnx, export_onnx, make_session, run_onnx
from sisguard.prune.ft import ft_prune
from sisguard.prune.measure import count_params
from sisguard.prune.models import resnet_cifar


@pytest.fixture(scope="module")
def resnet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, torch.nn.Module, Path, Path]:
    torch.manual_seed(0)
    dense = resnet_cifar(num_classes=8, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    pruned = ft_prune(dense, x, 0.5, count_params(dense)).eval()
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(dense, (3, 32, 32), out / "dense.onnx")
    export_onnx(pruned, (3, 32, 32), out / "pruned.onnx")
    return dense, pruned, out / "dense.onnx", out / "pruned.onnx"


def _initialiser_sizes(path: Path) -> int:
    model = onnx.load(str(path))
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def test_onnx_contract(resnet_pair) -> None:
    _, _, dense_path, _ = resnet_pair
    model = onnx.load(str(dense_path))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "logits"
    assert inp.type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim[1:]] == [3, 32, 32]
    assert not list(dense_path.parent.glob("*.data")), "weights must be stored inside the file"


def test_ft_onnx_is_smaller_and_matches_torch(resnet_pair) -> None:
    dense, pruned, dense_path, pruned_path = resnet_pair
    assert _initialiser_sizes(pruned_path) < 0.6 * _initialiser_sizes(dense_path)
    assert pruned_path.stat().st_size < dense_path.stat().st_size
    onnx_shapes = sorted(tuple(t.dims) for t in onnx.load(str(pruned_path)).graph.initializer if len(t.dims) == 4)
    torch_shapes = sorted(tuple(m.weight.shape) for m in pruned.modules() if isinstance(m, torch.nn.Conv2d))
    assert onnx_shapes == torch_shapes  # the expected, smaller conv weights (BN folded into them or not)
    stem_out = pruned.stem[0].weight.shape[0]
    assert stem_out < 8 and (stem_out, 3, 3, 3) in onnx_shapes
    x = np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32)
    assert check_onnx(pruned_path, pruned, x) < 1e-4
    assert check_onnx(dense_path, dense, x) < 1e-4


@pytest.mark.parametrize("batch", [1, 7, 33])
def test_dynamic_batch(resnet_pair, batch: int) -> None:
    _, _, _, pruned_path = resnet_pair
    out = run_onnx(make_session(pruned_path), np.zeros((batch, 3, 32, 32), np.float32))
    assert out.shape == (batch, 8)


def test_check_onnx_detects_a_different_model(resnet_pair) -> None:
    dense, _, _, pruned_path = resnet_pair
    x = np.random.default_rng(1).random((3, 3, 32, 32), dtype=np.float32)
    with pytest.raises(PruneError, match="differs from torch"):
        check_onnx(pruned_path, dense, x)


def test_old_opset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PruneError, match="opset"):
        export_onnx(resnet_cifar(width=2), (3, 32, 32), tmp_path / "m.onnx", opset=13)
