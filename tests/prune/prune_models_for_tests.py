"""Small torch models used by the prune tests (importable as ``prune_models_for_tests:…``)."""

from __future__ import annotations

import torch
from torch import nn


class GroupedConvNet(nn.Module):
    """A depthwise convolution reads pruned channels: FT must refuse it."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(torch.relu(self.conv1(x)))
        return self.fc(x.mean((2, 3)))


class ConcatNet(nn.Module):
    """Concatenates two branches along channels, which FT does not support."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.a(x), self.b(x)], dim=1)
        return self.fc(x.mean((2, 3)))


class TinyMLP(nn.Module):
    """A multilayer perceptron on flattened inputs (WT and FT both apply)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 48)
        self.fc2 = nn.Linear(48, 32)
        self.fc3 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def grouped_conv_net(num_classes: int = 10) -> nn.Module:
    """Factory for :class:`GroupedConvNet`."""
    return GroupedConvNet(num_classes)


def concat_net(num_classes: int = 10) -> nn.Module:
    """Factory for :class:`ConcatNet`."""
    return ConcatNet(num_classes)


def tiny_mlp(num_classes: int = 10) -> nn.Module:
    """Factory for :class:`TinyMLP`."""
    return TinyMLP(num_classes)
