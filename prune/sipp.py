"""SiPP: sensitivity-informed provable pruning of weights (Baykal et al.).

SiPP is unstructured like WT — it zeroes single Conv/Linear weights and keeps the zeros with
the same masks during retraining — but it decides from data which weights to keep. From a
small batch ``S`` of training inputs it computes each weight's sensitivity, its largest
share in its neuron's same-sign pre-activation (:mod:`sisguard.prune.sensitivity`), and
then keeps weights in one of two ways (``selection``):

``sample`` (default, the provable variant)
    Every neuron's positive and negative weights are two separate importance-sampling
    distributions ``p_j = s_j / S_u`` (``S_u`` the unit's summed sensitivity). A unit drawn
    ``m_u`` times approximates its pre-activation to relative error
    ``ε_u(m_u) = (c_u + √(c_u² + 6 c_u m_u)) / m_u`` with ``c_u = 3 S_u log(8η/δ)``. The
    sample counts are allocated as the paper does: minimise the sum over layers of the mean
    error bound of the layer's units subject to the budget, solved exactly through its
    Lagrange condition (one multiplier, bisected until the number of *distinct* kept weights
    equals the budget). Sampling is Poissonised — weight ``j`` first arrives at an
    exponential time of rate ``p_j``, and is kept when that is before ``m_u`` — so the kept
    set grows monotonically with the budget and the ratio is hit exactly. A kept weight is
    rescaled by ``count_j / (m_u p_j)`` (its number of arrivals over the expected number),
    the unbiased estimator of the pre-activation.
``topk`` (deterministic)
    Keep the weights of globally largest sensitivity, with a conv weight's share averaged over
    the patches of each input before the max over inputs (they are relative shares in [0, 1],
    comparable across layers; larger fan-in gives smaller shares, so wide layers lose more),
    unscaled. Ties (e.g. weights on inputs that are always 0 in ``S``) go by magnitude.

Entries that are already zero have sensitivity 0 and stay pruned, so iterative pruning only
removes more. Every layer keeps at least one weight.

Example:
    >>> import torch
    >>> from sisguard.prune.models import digits_cnn
    >>> from sisguard.prune.wt import count_nonzero
    >>> net = digits_cnn()
    >>> dense = sum(p.numel() for p in net.parameters())
    >>> masks = sipp_prune(net, torch.rand(32, 1, 8, 8), ratio=0.8, dense_params=dense, seed=0)
    >>> abs(1 - count_nonzero(net) / dense - 0.8) < 0.01
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sisguard.prune.errors import PruneError
from sisguard.prune.sensitivity import bound_constant, poisson, weight_sensitivities_and_units
from sisguard.prune.wt import Masks, max_wt_ratio, prunable_weights

#: how SiPP and PFP pick what to keep: importance sampling (provable) or deterministic top-k
SELECTIONS = ("sample", "topk")


def check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise PruneError(f"unknown selection {selection!r}: use one of {', '.join(SELECTIONS)}")


def check_ratio_and_selection(ratio: float, selection: str) -> None:
    """The options SiPP and PFP share; raises :class:`PruneError` naming the bad one."""
    if not 0.0 < ratio < 1.0:
        raise PruneError(f"prune ratio must lie in (0, 1), got {ratio}")
    check_selection(selection)


def _marginal(y: torch.Tensor) -> torch.Tensor:
    """``−d/dy`` of ``g(y) = (1 + √(1 + 6y)) / y`` (the error bound with ``m = c·y``); decreasing in ``y``.

    With ``r = √(1 + 6y)`` it simplifies to ``18 / (r (r − 1)²)``.
    """
    r = torch.sqrt(1.0 + 6.0 * y)
    return 18.0 / (r * (r - 1.0) ** 2)


def _solve_marginal(q: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """``y`` with ``_marginal(y) = q`` (elementwise): Newton on ``(1 + t) t² = 18/q`` with ``t = r − 1``.

    Started right of the root (``t = (18/q)^⅓``) the iteration decreases monotonically onto it.
    """
    target = 18.0 / np.maximum(q.double().numpy(), 1e-300)
    t = np.cbrt(target)
    for _ in range(iterations):
        t = t - ((1.0 + t) * t * t - target) / np.maximum(2.0 * t + 3.0 * t * t, 1e-300)
    return torch.from_numpy(t * (t + 2.0) / 6.0)


def allocate_samples(c: torch.Tensor, weight: torch.Tensor, log_lambda: float) -> torch.Tensor:
    """Samples per unit minimising ``Σ weight_u ε_u(m_u) + λ Σ m_u`` (the Lagrangian of the budget)."""
    q = math.exp(log_lambda) * c / weight
    return c * _solve_marginal(q)


def _flat(weights: dict[str, nn.Parameter], sens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.cat([p.detach().reshape(-1).double() for p in weights.values()])
    s = torch.cat([sens[name].reshape(-1).double() for name in weights])
    return w, s


def _units(weights: dict[str, nn.Parameter], w: torch.Tensor, s: torch.Tensor,
           eta: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per weight its unit (layer, neuron, sign) or −1; per unit its bound constant and objective weight."""
    unit_of = torch.full((w.numel(),), -1, dtype=torch.long)
    c_parts, obj_parts = [], []
    offset, next_unit = 0, 0
    for name, param in weights.items():
        n, rows = param.numel(), param.shape[0]
        row = torch.arange(n) // (n // rows)
        ws, ss = w[offset : offset + n], s[offset : offset + n]
        unit = next_unit + 2 * row + (ws < 0).long()
        live = (ws != 0) & (ss > 0)
        totals = torch.zeros(2 * rows, dtype=torch.float64).index_add_(0, unit[live] - next_unit, ss[live])
        used = totals > 0
        c_parts.append(bound_constant(totals, eta[name]))
        obj_parts.append(torch.where(used, 1.0 / max(1, int(used.sum())), 1.0).double())
        unit_of[offset : offset + n] = torch.where(live, unit, torch.full_like(unit, -1))
        offset += n
        next_unit += 2 * rows
    return unit_of, torch.cat(c_parts), torch.cat(obj_parts)


def _sample_keep(w: torch.Tensor, s: torch.Tensor, unit_of: torch.Tensor, c: torch.Tensor,
                 obj: torch.Tensor, keep: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept mask and rescaling factors of the importance-sampling variant, exactly ``keep`` kept."""
    live = unit_of >= 0
    totals = torch.zeros(c.numel(), dtype=torch.float64).index_add_(0, unit_of[live], s[live])
    p = torch.zeros_like(s)
    p[live] = s[live] / totals[unit_of[live]]
    uniform = torch.rand(w.numel(), generator=generator, dtype=torch.float64).clamp(min=1e-300)
    arrival = torch.full_like(s, math.inf)
    arrival[live] = -torch.log(uniform[live]) / p[live]       # first arrival of a Poisson stream of rate p

    def kept_at(log_lambda: float) -> tuple[int, torch.Tensor]:
        m = allocate_samples(c, obj, log_lambda)
        rel = torch.full_like(s, math.inf)
        rel[live] = arrival[live] / m[unit_of[live]]
        return int((rel < 1.0).sum()), m

    lo, hi = -80.0, 80.0                                       # log λ: small λ keeps everything
    for _ in range(50):
        mid = (lo + hi) / 2
        if kept_at(mid)[0] > keep:
            lo = mid
        else:
            hi = mid
    _, m = kept_at(hi)
    rel = torch.full_like(s, math.inf)
    rel[live] = arrival[live] / m[unit_of[live]]
    order = torch.argsort(rel, stable=True)
    n_live = int(live.sum())
    # exactly ``keep``: stretch every unit's horizon by the same factor (≈ 1) to the keep-th arrival
    ranked = rel[order]
    if 0 < keep < n_live:
        stretch = float((ranked[keep - 1] + ranked[keep]) / 2)
    else:
        stretch = float(ranked[n_live - 1]) * (1 + 1e-9) if n_live else 1.0
    m = m * stretch
    mask = torch.zeros_like(s, dtype=torch.bool)
    mask[order[: min(keep, n_live)]] = True
    scale = torch.ones_like(s)
    idx = mask.nonzero().squeeze(1)
    units = unit_of[idx]
    extra = poisson(p[idx] * (m[units] - arrival[idx]), generator)
    scale[idx] = (1.0 + extra) / (m[units] * p[idx])
    if keep > n_live:                                          # the batch saw fewer weights than the budget
        rest = torch.argsort(torch.where(mask | (w == 0), -1.0, w.abs()), descending=True, stable=True)
        mask[rest[: keep - n_live]] = True
    return mask, scale


def _topk_keep(w: torch.Tensor, s: torch.Tensor, keep: int) -> torch.Tensor:
    order = np.lexsort((-w.abs().numpy(), -s.numpy()))       # sensitivity first, then magnitude
    order = order[(w.numpy()[order] != 0)]
    mask = torch.zeros_like(s, dtype=torch.bool)
    mask[torch.from_numpy(order[:keep].copy())] = True
    return mask


def sipp_prune(model: nn.Module, x: torch.Tensor, ratio: float, dense_params: int,
               selection: str = "sample", seed: int = 0) -> Masks:
    """Prune ``model`` in place with SiPP to ratio ≈ ``ratio``; return the 0/1 masks (as WT does).

    Args:
        model: the network (may already be SiPP/WT-pruned: zeros stay zero).
        x: the sensitivity batch ``S`` (a few dozen to a few hundred training inputs).
        ratio: target ``1 − nonzero(model) / dense_params`` in (0, 1).
        dense_params: parameter count of the original dense network.
        selection: ``sample`` (importance sampling, rescaled) or ``topk`` (deterministic).
        seed: seed of the sampling.

    Raises:
        PruneError: ratio outside (0, 1) or beyond reach, unknown selection, unsupported layer.
    """
    check_ratio_and_selection(ratio, selection)
    sens, eta = weight_sensitivities_and_units(model, x, patch_mean=selection == "topk")
    weights = prunable_weights(model)
    reach = max_wt_ratio(model, dense_params)
    if ratio > reach:
        raise PruneError(f"SiPP cannot reach ratio {ratio}: at most {reach:.3f} of the parameters are "
                         "Conv/Linear weights")
    weight_ids = {id(p) for p in weights.values()}
    other_nonzero = sum(int(torch.count_nonzero(p.detach())) for p in model.parameters() if id(p) not in weight_ids)
    w, s = _flat(weights, sens)
    allowed = math.floor((1.0 - ratio) * dense_params + 0.5)
    keep = min(max(len(weights), allowed - other_nonzero), int((w != 0).sum()))
    if selection == "topk":
        mask, scale = _topk_keep(w, s, keep), torch.ones_like(s)
    else:
        unit_of, c, obj = _units(weights, w, s, eta)
        mask, scale = _sample_keep(w, s, unit_of, c, obj, keep, torch.Generator().manual_seed(seed))
    masks: Masks = {}
    offset = 0
    with torch.no_grad():
        for name, param in weights.items():
            n = param.numel()
            layer_mask = mask[offset : offset + n]
            if not bool(layer_mask.any()):                    # every layer keeps its most sensitive weight
                best = int(torch.argmax(s[offset : offset + n] + 1e-12 * w[offset : offset + n].abs()))
                layer_mask = layer_mask.clone()
                layer_mask[best] = True
                scale[offset + best] = 1.0
            factor = (layer_mask.double() * scale[offset : offset + n]).reshape(param.shape).to(param.dtype)
            param.mul_(factor)
            masks[name] = layer_mask.reshape(param.shape).to(param.dtype)
            offset += n
    return masks
