"""Weight thresholding (WT): global unstructured magnitude pruning.

All Conv/Linear weight tensors compete in one pool; the entries of smallest magnitude are
set to zero until ``1 − nonzero(pruned) / params(dense)`` reaches the target. The zeros are
kept by binary masks re-applied after every optimiser step during retraining. The tensors
keep their shapes, so a dense runtime gains no speed — WT is here as the paper's baseline.

Example:
    >>> from sisguard.prune.models import digits_cnn
    >>> net = digits_cnn()
    >>> dense = sum(p.numel() for p in net.parameters())
    >>> masks = wt_prune(net, ratio=0.8, dense_params=dense)
    >>> abs(1 - count_nonzero(net) / dense - 0.8) < 0.01
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sisguard.prune.errors import PruneError, UnsupportedModelError

#: parameter name → 0/1 mask of the same shape
Masks = dict[str, torch.Tensor]


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Qualified name → weight of every Conv/Linear layer (the tensors WT may sparsify)."""
    weights: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            weights[f"{name}.weight" if name else "weight"] = module.weight
    return weights


def count_nonzero(model: nn.Module) -> int:
    """Number of nonzero parameter entries."""
    return int(sum(int(torch.count_nonzero(p.detach())) for p in model.parameters()))


def max_wt_ratio(model: nn.Module, dense_params: int | None = None) -> float:
    """The largest prune ratio WT can reach (one weight left per layer, other parameters kept)."""
    weights = prunable_weights(model)
    if not weights:
        raise UnsupportedModelError("WT cannot prune this model: it has no Conv or Linear layers")
    dense = dense_params or sum(p.numel() for p in model.parameters())
    prunable = sum(w.numel() for w in weights.values())
    return (prunable - len(weights)) / dense


def wt_prune(model: nn.Module, ratio: float, dense_params: int) -> Masks:
    """Zero the smallest-magnitude Conv/Linear weights of ``model`` in place; return the masks.

    Entries that are already zero are counted as pruned, so repeated calls with growing
    ratios (iterative pruning) only ever remove more weights.

    Raises:
        PruneError: the ratio is outside (0, 1) or beyond what WT can reach.
    """
    if not 0.0 < ratio < 1.0:
        raise PruneError(f"prune ratio must lie in (0, 1), got {ratio}")
    weights = prunable_weights(model)
    if ratio > max_wt_ratio(model, dense_params):
        raise PruneError(
            f"WT cannot reach ratio {ratio}: at most {max_wt_ratio(model, dense_params):.3f} of the "
            "parameters are Conv/Linear weights"
        )
    weight_ids = {id(w) for w in weights.values()}
    other_nonzero = sum(int(torch.count_nonzero(p.detach())) for p in model.parameters() if id(p) not in weight_ids)
    allowed = math.floor((1.0 - ratio) * dense_params + 0.5)
    keep = max(len(weights), allowed - other_nonzero)
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
    keep = min(keep, flat.numel())
    order = torch.argsort(flat, descending=True, stable=True)
    keep_mask = torch.zeros_like(flat, dtype=torch.bool)
    keep_mask[order[:keep]] = True
    masks: Masks = {}
    offset = 0
    with torch.no_grad():
        for name, weight in weights.items():
            n = weight.numel()
            mask = keep_mask[offset : offset + n].reshape(weight.shape).to(weight.dtype)
            weight.mul_(mask)
            masks[name] = mask
            offset += n
    return masks


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Re-zero the pruned entries (called after each optimiser step while retraining)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
