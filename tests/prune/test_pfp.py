"""PFP: channel sensitivities by hand, the ratio, physical = masked outputs, channel multiples, seeds,
the data-informed choice, bad input, and a PFP pair served by a real server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from prune_models_for_tests import tiny_mlp
from support.server import running, write_config
from torch import nn

from sisguard.client import AsyncClient
from sisguard.prune.cli import main
from sisguard.prune.ft import channel_importance
from sisguard.prune.graph import analyse
from sisguard.prune.measure import count_params
from sisguard.prune.models import digits_cnn, resnet_cifar
from sisguard.prune.pfp import apply_plan, mask_plan, pfp_plan, pfp_prune
from sisguard.prune.sensitivity import channel_sensitivities

TINY = ["--cycles", "1", "--epochs", "1", "--retrain-epochs", "1"]


class TwoConv(nn.Module):
    """conv1 (1 → 3, 2×2) → relu → conv2 (3 → 2, 2×2) → relu → flatten → fc (8 → 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 2)
        self.conv2 = nn.Conv2d(3, 2, 2)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(x, 1))


def _shares(terms: list[float], positive: list[bool], owner: list[int], channels: int) -> list[float]:
    """Per channel, its share of the same-sign sums of one pre-activation: ``terms`` are the
    products ``w_k a_k``, ``positive[k]`` the sign of ``w_k``, ``owner[k]`` the channel of input ``k``."""
    best = [0.0] * channels
    for sign in (True, False):
        z = sum(t for t, p in zip(terms, positive, strict=True) if p == sign)
        if z == 0:
            continue
        for c in range(channels):
            part = sum(t for t, p, o in zip(terms, positive, owner, strict=True) if p == sign and o == c)
            best[c] = max(best[c], part / z)
    return best


def test_channel_sensitivities_match_a_hand_computation() -> None:
    torch.manual_seed(0)
    net = TwoConv().eval()
    x = torch.rand(3, 1, 4, 4)
    graph = analyse(net, x)
    sens, eta = channel_sensitivities(net, graph, x)
    with torch.no_grad():
        a1 = torch.relu(net.conv1(x))                     # [3, 3, 3, 3]: what conv2 reads
        a2 = torch.flatten(torch.relu(net.conv2(a1)), 1)  # [3, 8]: what fc reads (2 channels × 4)
    w2, wf = net.conv2.weight.detach(), net.fc.weight.detach()
    # conv1's group: consumer conv2, per point, output channel and 2×2 output position
    expected = [0.0] * 3
    for n, o, r, c in itertools.product(range(3), range(2), range(2), range(2)):
        taps = list(itertools.product(range(3), range(2), range(2)))
        terms = [float(w2[o, ch, kh, kw]) * float(a1[n, ch, r + kh, c + kw]) for ch, kh, kw in taps]
        signs = [float(w2[o, ch, kh, kw]) > 0 for ch, kh, kw in taps]
        shares = _shares(terms, signs, [ch for ch, _, _ in taps], 3)
        expected = [max(e, v) for e, v in zip(expected, shares, strict=True)]
    got = sens[graph.producers["conv1"]]
    torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    # conv2's group: consumer fc reads the flattened [2 channels × 4 positions]
    expected = [0.0] * 2
    for n, o in itertools.product(range(3), range(2)):
        terms = [float(wf[o, k]) * float(a2[n, k]) for k in range(8)]
        shares = _shares(terms, [float(wf[o, k]) > 0 for k in range(8)], [k // 4 for k in range(8)], 2)
        expected = [max(e, v) for e, v in zip(expected, shares, strict=True)]
    got = sens[graph.producers["conv2"]]
    torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    assert eta[graph.producers["conv1"]] == 1 + 2 * 2 * 2  # conv2: 2 channels × 2×2 positions (+1)


CASES = [
    ("digits_cnn", digits_cnn, (1, 8, 8)),
    ("resnet_cifar", lambda: resnet_cifar(width=8), (3, 32, 32)),
    ("resnet_cifar_deep", lambda: resnet_cifar(width=4, blocks_per_stage=2), (3, 32, 32)),
    ("mlp", tiny_mlp, (1, 8, 8)),
]


@pytest.mark.parametrize("selection", ["sample", "topk"])
@pytest.mark.parametrize("ratio", [0.3, 0.6, 0.9])
@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_pfp_hits_the_ratio_and_shrinks(name: str, factory, shape, ratio: float, selection: str) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    x = torch.rand(16, *shape)
    dense = count_params(net)
    small = pfp_prune(net, x, ratio, dense, selection=selection, seed=0)
    assert abs(1 - count_params(small) / dense - ratio) < 0.01
    assert small(x).shape == net(x).shape


@pytest.mark.parametrize("selection", ["sample", "topk"])
@pytest.mark.parametrize(("name", "factory", "shape"), CASES, ids=[c[0] for c in CASES])
def test_physically_pruned_model_equals_the_masked_model(name: str, factory, shape, selection: str) -> None:
    torch.manual_seed(0)
    net = factory().eval()
    x = torch.rand(16, *shape)
    plan = pfp_plan(net, x, 0.6, count_params(net), selection=selection, seed=1)
    small = apply_plan(net, plan, x[:2]).eval()
    masked = mask_plan(net, plan).eval()
    assert count_params(small) < count_params(masked) == count_params(net)
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), rtol=1e-4, atol=1e-5)


def test_channel_multiple_is_honoured() -> None:
    torch.manual_seed(0)
    net = resnet_cifar(width=8).eval()
    x = torch.rand(8, 3, 32, 32)
    plan = pfp_plan(net, x, 0.5, count_params(net), channel_multiple=4)
    sizes = {g.gid: g.size for g in plan.graph.prunable_groups()}
    for gid, kept in plan.kept.items():
        assert len(kept) % 4 == 0 or len(kept) == sizes[gid], (gid, len(kept))


def test_a_channel_nobody_reads_goes_first_however_large_its_filter() -> None:
    """conv2's channel 3 has the largest filter but fc1 ignores it: FT keeps it, PFP removes it."""
    torch.manual_seed(0)
    net = digits_cnn().eval()
    with torch.no_grad():
        net.conv2.weight[3] *= 50.0
        net.fc1.weight[:, 3 * 16 : 4 * 16] = 0.0
    x = torch.rand(32, 1, 8, 8)
    dense = count_params(net)
    for selection in ("sample", "topk"):
        plan = pfp_plan(net, x, 0.5, dense, selection=selection)
        assert 3 not in plan.kept[plan.graph.producers["conv2"]].tolist(), selection
    graph = analyse(net, x[:2])
    assert int(channel_importance(net, graph)[graph.producers["conv2"]].argmax()) == 3  # FT's first pick


def test_same_seed_same_channels_other_seed_other_sample() -> None:
    torch.manual_seed(0)
    net = resnet_cifar(width=8).eval()
    x = torch.rand(8, 3, 32, 32)
    dense = count_params(net)
    plans = [pfp_plan(net, x, 0.6, dense, seed=s) for s in (5, 5, 6, 7)]
    assert all(torch.equal(plans[0].kept[g], plans[1].kept[g]) for g in plans[0].kept)
    assert all(torch.equal(plans[0].scale[g], plans[1].scale[g]) for g in plans[0].kept)
    differs = [any(not torch.equal(plans[0].kept[g], p.kept[g]) for g in p.kept) for p in plans[2:]]
    assert any(differs)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prune", "--arch", "digits_cnn", "--method", "pfp", "--ratio", "1.5"], "between 0 and 1"),
        (["prune", "--arch", "digits_cnn", "--method", "sipp", "--ratio", "0"], "between 0 and 1"),
        (["prune", "--arch", "digits_cnn", "--method", "pfp", "--ratio", "0.9999"], "cannot reach"),
        (["prune", "--arch", "digits_cnn", "--method", "sipp", "--ratio", "0.5", "--sensitivity-samples", "0"],
         "sensitivity samples must be >= 1"),
        (["prune", "--arch", "digits_cnn", "--method", "pfp", "--ratio", "0.5", "--selection", "greedy"],
         "unknown selection"),
        (["prune", "--arch", "resnet_cifar", "--data", "synthetic32", "--synthetic-n", "40", "--method", "pfp",
          "--ratio", "0.5"], "need 128 training inputs"),
        (["prune", "--arch", "digits_cnn", "--method", "sipp", "--ratio", "0.5", "--sensitivity-samples", "5000"],
         "has only 1347"),
        (["prune", "--model", "prune_models_for_tests:grouped_conv_net", "--method", "pfp", "--ratio", "0.5"],
         "grouped convolution"),
        (["prune", "--model", "prune_models_for_tests:grouped_conv_net", "--method", "sipp", "--ratio", "0.5"],
         "grouped convolution"),
        (["evaluate", "--arch", "resnet_cifar", "--data", "synthetic32", "--synthetic-n", "40",
          "--methods", "wt,sipp"], "need 128 training inputs"),
    ],
)
def test_bad_input_fails_before_training(argv: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*argv, "--out", str(tmp_path / "out"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "epoch" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.onnx"))


async def test_a_pfp_pair_is_made_and_served(tmp_path: Path) -> None:
    out = tmp_path / "pfp"
    code = main(["prune", "--arch", "digits_cnn", "--data", "digits", "--method", "pfp", "--ratio", "0.5",
                 "--sensitivity-samples", "32", "--no-control", "--out", str(out), "--name", "pfp50", "-q", *TINY])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert abs(manifest["ratio"] - 0.5) < 0.01
    assert manifest["params"]["pruned"] < manifest["params"]["dense"]  # physically smaller, like FT
    assert manifest["sensitivity"] == {"samples": 32, "selection": "sample"}
    block = yaml.safe_load((out / "pair.yaml").read_text())[0]  # paths relative to the config's directory
    config = write_config(out, [block], runtime={"providers": ["cpu"], "intra_op_threads": 1})
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    async with running(config) as app, AsyncClient(f"127.0.0.1:{app.port}", timeout=30) as client:
        prediction = await client.predict("pfp50", x)
    assert prediction.dense is not None and prediction.pruned is not None
    assert prediction.pruned.probabilities.shape == (4, 10)
    np.testing.assert_allclose(prediction.pruned.probabilities.sum(axis=1), 1.0, rtol=1e-4)
