"""Weight thresholding: the ratio is hit, zeros survive retraining, impossible ratios are refused."""

from __future__ import annotations

import pytest
import torch

from sisguard.prune.errors import PruneError
from sisguard.prune.measure import count_params
from sisguard.prune.models import digits_cnn, resnet_cifar
from sisguard.prune.train import TrainConfig, train
from sisguard.prune.wt import count_nonzero, max_wt_ratio, wt_prune


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("factory", [digits_cnn, lambda: resnet_cifar(width=4)])
def test_wt_hits_the_ratio(factory, ratio: float) -> None:
    torch.manual_seed(0)
    net = factory()
    dense = count_params(net)
    wt_prune(net, ratio, dense)
    assert abs(1 - count_nonzero(net) / dense - ratio) < 0.01


def test_iterative_wt_keeps_earlier_zeros(digits) -> None:
    torch.manual_seed(0)
    net = digits_cnn()
    dense = count_params(net)
    masks = wt_prune(net, 0.5, dense)
    train(net, digits, TrainConfig(epochs=1), seed=0, masks=masks)
    zeros_before = {n: (m == 0) for n, m in masks.items()}
    masks2 = wt_prune(net, 0.7, dense)
    for name, was_zero in zeros_before.items():
        assert bool((masks2[name][was_zero] == 0).all()), name
    assert abs(1 - count_nonzero(net) / dense - 0.7) < 0.01


def test_wt_refuses_unreachable_ratio() -> None:
    net = digits_cnn()
    too_far = (max_wt_ratio(net) + 1) / 2
    with pytest.raises(PruneError, match="cannot reach"):
        wt_prune(net, too_far, count_params(net))
