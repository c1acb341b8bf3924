"""SiPP: sensitivities against a hand computation, the ratio, masks through retraining, seeds, sampling."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from sisguard.prune.errors import PruneError, UnsupportedModelError
from sisguard.prune.measure import count_params
from sisguard.prune.models import digits_cnn, resnet_cifar
from sisguard.prune.sensitivity import weight_sensitivities
from sisguard.prune.sipp import sipp_prune
from sisguard.prune.train import TrainConfig, train
from sisguard.prune.wt import count_nonzero


class ConvLinear(nn.Module):
    """conv 2×2 (1 → 2 channels, stride 1, padding 1) → relu → flatten → linear (→ 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def _hand_sensitivity(weight: torch.Tensor, points: list[list[float]], patch_mean: bool) -> torch.Tensor:
    """s_ij by loops: per point (each input split into relu(a), relu(−a)), per patch, per neuron."""
    rows, cols = weight.shape
    sens = torch.zeros(rows, cols, dtype=torch.float64)
    for patches in points:  # one point = a list of patches, each a list of cols values
        split = [[[max(v, 0.0) for v in p] for p in patches], [[max(-v, 0.0) for v in p] for p in patches]]
        for half in split:
            for i, j in itertools.product(range(rows), range(cols)):
                w = float(weight[i, j])
                if w == 0:
                    continue
                shares = []
                for a in half:
                    z = sum(float(weight[i, k]) * a[k] for k in range(cols) if (float(weight[i, k]) > 0) == (w > 0)
                            and float(weight[i, k]) != 0)
                    shares.append(w * a[j] / z if z != 0 else 0.0)
                value = sum(shares) / len(shares) if patch_mean else max(shares)
                sens[i, j] = max(sens[i, j], value)
    return sens


@pytest.mark.parametrize("patch_mean", [False, True], ids=["max-over-patches", "mean-over-patches"])
def test_sensitivities_match_a_hand_computation(patch_mean: bool) -> None:
    torch.manual_seed(0)
    net = ConvLinear().eval()
    x = torch.randn(3, 1, 3, 3)  # signed inputs: the first layer's points are split in two halves
    sens = weight_sensitivities(net, x, patch_mean=patch_mean)
    # conv: patches by explicit slicing of the zero-padded input (2×2 windows, 4×4 output positions)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    conv_points = [[padded[n, 0, r : r + 2, c : c + 2].reshape(-1).tolist() for r in range(4) for c in range(4)]
                   for n in range(3)]
    expected_conv = _hand_sensitivity(net.conv.weight.detach().reshape(2, 4), conv_points, patch_mean)
    torch.testing.assert_close(sens["conv.weight"].reshape(2, 4).double(), expected_conv, rtol=1e-5, atol=1e-6)
    # linear: one patch per point, the post-relu features (non-negative: no split needed, but harmless)
    with torch.no_grad():
        feats = torch.flatten(torch.relu(net.conv(x)), 1)
    fc_points = [[feats[n].tolist()] for n in range(3)]
    expected_fc = _hand_sensitivity(net.fc.weight.detach(), fc_points, patch_mean)
    torch.testing.assert_close(sens["fc.weight"].double(), expected_fc, rtol=1e-5, atol=1e-6)
    assert float(sens["conv.weight"].max()) <= 1.0 + 1e-6 and float(sens["conv.weight"].min()) >= 0.0


def test_known_answer_on_one_neuron() -> None:
    """w = [1, 3, −2]; inputs (1, 1, 1) and (3, 1, 2): positive shares 1/4, 3/4 and 3/6, 3/6; the
    negative weight is alone in its sum, so its share is 1."""
    layer = nn.Linear(3, 1, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 3.0, -2.0]]))
        layer.bias.fill_(5.0)  # the bias is not part of the shares
    sens = weight_sensitivities(nn.Sequential(layer), torch.tensor([[1.0, 1.0, 1.0], [3.0, 1.0, 2.0]]))
    torch.testing.assert_close(sens["0.weight"], torch.tensor([[0.5, 0.75, 1.0]]))


CASES = [("digits_cnn", digits_cnn, (1, 8, 8)), ("resnet_cifar", lambda: resnet_cifar(width=4), (3, 32, 32))]


@pytest.mark.parametrize("selection", ["sample", "topk"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7, 0.9, 0.95])
@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_sipp_hits_the_ratio(name: str, factory, shape, ratio: float, selection: str) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    dense = count_params(net)
    masks = sipp_prune(net, torch.rand(16, *shape), ratio, dense, selection, seed=0)
    assert abs(1 - count_nonzero(net) / dense - ratio) < 0.01
    weights = dict(net.named_parameters())
    for pname, mask in masks.items():
        assert mask.shape == weights[pname].shape
        assert bool(((weights[pname] != 0) <= (mask != 0)).all()), "a weight outside its mask survived"
        assert int(mask.sum()) >= 1, f"{pname} lost every weight"


def test_topk_keeps_the_most_sensitive_weights() -> None:
    torch.manual_seed(0)
    net = digits_cnn().eval()
    x = torch.rand(16, 1, 8, 8)
    sens = weight_sensitivities(net, x, patch_mean=True)
    masks = sipp_prune(copy.deepcopy(net), x, 0.7, count_params(net), "topk")
    kept = torch.cat([sens[n][masks[n] != 0] for n in masks])
    dropped = torch.cat([sens[n][masks[n] == 0] for n in masks])
    assert float(kept.min()) >= float(dropped.max()) - 1e-7


def test_iterative_sipp_keeps_earlier_zeros_and_masks_survive_retraining(digits) -> None:
    torch.manual_seed(0)
    net = digits_cnn()
    dense = count_params(net)
    x = torch.from_numpy(digits.x_train[:64])
    masks = sipp_prune(net, x, 0.5, dense, seed=1)
    train(net, digits, TrainConfig(epochs=1), seed=0, masks=masks)
    params = dict(net.named_parameters())
    for name, mask in masks.items():
        assert bool((params[name][mask == 0] == 0).all()), f"retraining revived pruned entries of {name}"
    zeros = {n: m == 0 for n, m in masks.items()}
    masks2 = sipp_prune(net, x, 0.7, dense, seed=2)
    for name, was_zero in zeros.items():
        assert bool((masks2[name][was_zero] == 0).all()), name
    assert abs(1 - count_nonzero(net) / dense - 0.7) < 0.01


def test_same_seed_same_result_other_seed_other_sample() -> None:
    torch.manual_seed(0)
    base = digits_cnn().eval()
    x = torch.rand(16, 1, 8, 8)
    dense = count_params(base)
    runs = []
    for seed in (3, 3, 4):
        net = copy.deepcopy(base)
        sipp_prune(net, x, 0.6, dense, "sample", seed=seed)
        runs.append(torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0] != 0, runs[2] != 0)


def test_rescaling_keeps_the_pre_activations_on_average() -> None:
    """Averaged over seeds, the rescaled sample computes about the dense pre-activations on the
    sensitivity batch; the same masks without the rescaling lose a large part of them."""
    torch.manual_seed(0)
    layer = nn.Linear(40, 4)
    x = torch.rand(8, 40)
    with torch.no_grad():
        expected = layer(x)
    rescaled, masked_only = torch.zeros_like(expected), torch.zeros_like(expected)
    seeds = 30
    for seed in range(seeds):
        net = nn.Sequential(copy.deepcopy(layer))
        masks = sipp_prune(net, x, 0.5, count_params(net), "sample", seed=seed)
        plain = copy.deepcopy(layer)
        with torch.no_grad():
            plain.weight.mul_(masks["0.weight"])
            rescaled += net(x)
            masked_only += plain(x)
    err_rescaled = float((rescaled / seeds - expected).abs().mean())
    err_masked = float((masked_only / seeds - expected).abs().mean())
    assert err_rescaled < 0.5 * err_masked
    assert err_rescaled < 0.25 * float(expected.abs().mean())


def test_bad_arguments_are_refused() -> None:
    net = digits_cnn()
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(PruneError, match=r"in \(0, 1\)"):
        sipp_prune(net, x, 1.2, count_params(net))
    with pytest.raises(PruneError, match="unknown selection"):
        sipp_prune(net, x, 0.5, count_params(net), "greedy")
    with pytest.raises(UnsupportedModelError, match="grouped convolution"):
        sipp_prune(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), torch.rand(2, 4, 5, 5), 0.5, 100)
