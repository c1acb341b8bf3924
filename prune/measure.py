"""Size and cost of a model: parameters, nonzero parameters and FLOPs.

FLOPs count one multiply-add as two operations for Conv and Linear layers (the layers that
dominate the cost of the built-in networks) and are measured with forward hooks on one
sample, so physically shrunk FT layers show their savings; WT zeros do not change them.

Example:
    >>> import torch
    >>> from sisguard.prune.models import digits_cnn
    >>> count_flops(digits_cnn(), (1, 8, 8)) > 0
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Total number of parameter entries."""
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a single sample of ``input_shape`` (Conv and Linear layers)."""
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight  # type: ignore[union-attr]
        per_output = math.prod(weight.shape[1:])
        total += 2 * per_output * output.numel()

    def linear_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * module.in_features * output.numel()  # type: ignore[operator]

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total
