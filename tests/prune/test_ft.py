"""Filter thresholding: ratio, physical shrinking, residual consistency, unsupported models."""

from __future__ import annotations

import pytest
import torch
from prune_models_for_tests import concat_net, grouped_conv_net, tiny_mlp

from sisguard.prune.errors import UnsupportedModelError
from sisguard.prune.ft import apply_keep, ft_prune
from sisguard.prune.graph import analyse
from sisguard.prune.measure import count_params
from sisguard.prune.models import digits_cnn, resnet_cifar

CASES = [
    ("digits_cnn", digits_cnn, (1, 8, 8)),
    ("resnet_cifar", lambda: resnet_cifar(width=8), (3, 32, 32)),
    ("resnet_cifar_deep", lambda: resnet_cifar(width=4, blocks_per_stage=2), (3, 32, 32)),
    ("mlp", tiny_mlp, (1, 8, 8)),
]


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_ft_hits_the_ratio_and_shrinks_every_tensor(name: str, factory, shape, ratio: float) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    x = torch.rand(3, *shape)
    dense = count_params(net)
    small = ft_prune(net, x, ratio, dense)
    assert abs(1 - count_params(small) / dense - ratio) < 0.01
    assert small(x).shape == net(x).shape
    # physically smaller: tensors lose entries rather than being zeroed
    shrunk = [n for n, p in small.named_parameters() if p.numel() < dict(net.named_parameters())[n].numel()]
    assert shrunk, "FT must shrink tensors, not zero them"


def test_residual_groups_tie_block_outputs_and_shortcuts() -> None:
    net = resnet_cifar(width=4, blocks_per_stage=2)
    graph = analyse(net, torch.zeros(1, 3, 32, 32))
    group_of = graph.producers
    assert group_of["stem.0"] == group_of["layers.0.conv2"] == group_of["layers.1.conv2"]
    assert group_of["layers.2.conv2"] == group_of["layers.2.shortcut.0"] == group_of["layers.3.conv2"]
    assert group_of["layers.0.conv1"] != group_of["layers.0.conv2"]
    assert not graph.groups[group_of["fc"]].prunable


def test_removing_dead_residual_channels_leaves_outputs_unchanged() -> None:
    """Known answer: channels that are zero along a whole residual chain can be removed exactly."""
    torch.manual_seed(0)
    net = resnet_cifar(width=8, blocks_per_stage=2).eval()
    x = torch.rand(4, 3, 32, 32)
    graph = analyse(net, x)
    gid = graph.producers["stem.0"]
    dead = torch.tensor([1, 4, 6])
    with torch.no_grad():
        for name, norm_gid in graph.norms.items():
            if norm_gid == gid:
                bn = net.get_submodule(name)
                bn.weight[dead] = 0.0
                bn.bias[dead] = 0.0
        expected = net(x)
    keep = torch.tensor([i for i in range(8) if i not in dead.tolist()])
    apply_keep(net, graph, {gid: keep})
    assert net.get_submodule("stem.0").out_channels == 5
    assert net.get_submodule("layers.2.conv1").in_channels == 5
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def test_flatten_consumer_keeps_channel_blocks() -> None:
    """digits_cnn flattens 16×4×4 into fc1: removing a conv2 channel removes its 16 inputs of fc1."""
    torch.manual_seed(0)
    net = digits_cnn().eval()
    x = torch.rand(4, 1, 8, 8)
    graph = analyse(net, x)
    gid = graph.producers["conv2"]
    with torch.no_grad():
        net.conv2.weight[3] = 0.0
        net.conv2.bias[3] = 0.0
        expected = net(x)
    apply_keep(net, graph, {gid: torch.tensor([i for i in range(16) if i != 3])})
    assert net.fc1.in_features == 15 * 16
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize(("factory", "message"), [(grouped_conv_net, "grouped convolution"),
                                                   (concat_net, "cat")])
def test_unsupported_models_are_refused_by_name(factory, message: str) -> None:
    net = factory()
    with pytest.raises(UnsupportedModelError, match=message):
        ft_prune(net, torch.zeros(2, 1, 8, 8), 0.5, count_params(net))


@pytest.mark.parametrize("multiple", [8, 16])
def test_channel_multiple_keeps_hardware_friendly_widths(multiple: int) -> None:
    torch.manual_seed(0)
    net = resnet_cifar(width=32).eval()
    x = torch.rand(2, 3, 32, 32)
    dense = count_params(net)
    small = ft_prune(net, x, 0.5, dense, channel_multiple=multiple)
    widths = [m.out_channels for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % multiple == 0 for w in widths), widths
    assert abs(1 - count_params(small) / dense - 0.5) < 0.01
