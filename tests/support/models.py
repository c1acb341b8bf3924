"""Small ONNX models exported with torch for the tests (legacy exporter: fast, deterministic)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def export(module: nn.Module, path: Path, input_shape: tuple[int, ...], *, output_name: str = "logits") -> Path:
    """Export ``module`` with a dynamic batch axis to ``path``."""
    module.eval()
    example = torch.zeros(2, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["input"],
            output_names=[output_name],
            dynamic_axes={"input": {0: "batch"}, output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def mlp(input_shape: tuple[int, ...], classes: int, hidden: int = 16, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    size = 1
    for d in input_shape:
        size *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def magnitude_pruned(module: nn.Module, fraction: float) -> nn.Module:
    """A copy with the smallest-magnitude ``fraction`` of each weight matrix set to zero."""
    import copy

    pruned = copy.deepcopy(module)
    with torch.no_grad():
        for m in pruned.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                w = m.weight
                k = int(w.numel() * fraction)
                if k:
                    cut = w.abs().flatten().kthvalue(k).values
                    w[w.abs() <= cut] = 0.0
    return pruned


class L2Score(nn.Module):
    """score(x) = ||x||_2 per row: the first public SIS case."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((x * x).sum(dim=1, keepdim=True))


class LinearScore(nn.Module):
    """score(x) = theta . x per row: the second public SIS case."""

    def __init__(self, theta: list[float]) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta], dtype=torch.float32).T, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.theta
