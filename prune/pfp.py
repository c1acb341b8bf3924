"""PFP: provable filter pruning (Liebenwein et al., ICLR 2020), physically shrinking like FT.

PFP removes the same structures as FT — output channels of Conv/Linear layers, grouped by
:mod:`sisguard.prune.graph` so residual additions keep consistent widths — and shrinks the
model with FT's :func:`~sisguard.prune.ft.apply_keep`. What differs is *which* channels and
*how many per group*:

1. **Sensitivity** of each channel from a small batch ``S`` of training inputs: its largest
   share in a consumer's same-sign pre-activation
   (:func:`~sisguard.prune.sensitivity.channel_sensitivities`), so a channel that a
   following layer barely reads is unimportant whatever its filter's norm.
2. **Per-group budget** as in the paper: a group with summed sensitivity ``S_g`` sampled
   ``m_g`` times approximates its consumers' pre-activations to relative error ``ε`` once
   ``m_g = c_g (6 + 2ε) / ε²`` with ``c_g = 3 S_g log(8η_g/δ)``; one ``ε`` shared by all
   groups is bisected until the parameter count meets the target, the number of channels
   kept being the distinct ones among ``m_g`` draws. Groups whose channels share the load
   evenly (large ``S_g``) keep more channels than groups dominated by a few. When channels
   are too coarse to land within 0.25 % of the target, FT's local search moves single
   channels (:func:`~sisguard.prune.ft.refine_keep`); ``channel_multiple`` is honoured.
3. **Selection** (``selection``): ``sample`` (default) draws channels from ``p_c = s_c / S_g``
   (Poissonised: channel ``c`` first arrives at an exponential time of rate ``p_c``; the
   first ``k_g`` arrivals are kept) and rescales each kept channel's inputs in every
   consumer by ``count_c / (T_g p_c)``, the unbiased estimator; ``topk`` keeps the ``k_g``
   channels of largest sensitivity, unscaled (the deterministic PFP).

Pruned channels are read by consumers only, so the physically pruned model computes exactly
what the dense model computes with those consumer inputs zeroed (:func:`mask_plan`).

Example:
    >>> import torch
    >>> from sisguard.prune.models import resnet_cifar
    >>> net = resnet_cifar(width=8).eval()
    >>> dense = sum(p.numel() for p in net.parameters())
    >>> small = pfp_prune(net, torch.rand(16, 3, 32, 32), ratio=0.5, dense_params=dense)
    >>> abs(1 - sum(p.numel() for p in small.parameters()) / dense - 0.5) < 0.01
    True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sisguard.prune.errors import PruneError, UnsupportedModelError
from sisguard.prune.ft import (
    apply_keep,
    channel_importance,
    check_forward,
    planned_params,
    refine_keep,
    snap_count,
)
from sisguard.prune.graph import ChannelGraph, analyse
from sisguard.prune.sensitivity import bound_constant, channel_sensitivities, poisson, samples_for_error
from sisguard.prune.sipp import check_ratio_and_selection


@dataclass
class PfpPlan:
    """What PFP keeps: per prunable group the kept channel indices and their input rescaling."""

    graph: ChannelGraph
    kept: dict[int, torch.Tensor]
    scale: dict[int, torch.Tensor]
    #: the shared relative error ε of the per-group budget
    eps: float


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def pfp_plan(model: nn.Module, x: torch.Tensor, ratio: float, dense_params: int, channel_multiple: int = 1,
             selection: str = "sample", seed: int = 0) -> PfpPlan:
    """Compute sensitivities on ``x`` and decide the kept channels for ratio ≈ ``ratio``.

    Raises:
        PruneError: ratio outside (0, 1) or beyond reach, unknown selection, unsupported model.
    """
    check_ratio_and_selection(ratio, selection)
    if channel_multiple < 1:
        raise PruneError(f"channel multiple must be >= 1, got {channel_multiple}")
    graph = analyse(model, x[:2])
    groups = graph.prunable_groups()
    if not groups:
        raise UnsupportedModelError("PFP cannot prune this model: it has no prunable channels")
    shapes = _shapes(model)
    target = round((1.0 - ratio) * dense_params)
    floor = planned_params(graph, shapes, {g.gid: 1 for g in groups})
    if floor > target:
        raise PruneError(f"PFP cannot reach ratio {ratio} on this model (at most {1 - floor / dense_params:.3f})")
    sens, eta = channel_sensitivities(model, graph, x)
    generator = torch.Generator().manual_seed(seed)
    prob, const, arrival = {}, {}, {}
    for g in groups:
        s = sens[g.gid].double()
        prob[g.gid] = s / s.sum()
        const[g.gid] = bound_constant(s.sum(), eta[g.gid])
        uniform = torch.rand(g.size, generator=generator, dtype=torch.float64).clamp(min=1e-300)
        arrival[g.gid] = torch.where(prob[g.gid] > 0, -torch.log(uniform) / prob[g.gid], math.inf)

    def counts(eps: float) -> dict[int, int]:
        keep = {}
        for g in groups:
            m = float(samples_for_error(const[g.gid], eps))
            if selection == "sample":
                k = int((arrival[g.gid] < m).sum())
            else:  # expected number of distinct channels among m draws
                k = round(float((1.0 - torch.exp(-prob[g.gid] * m)).sum()))
            keep[g.gid] = snap_count(max(1, k), g.size, channel_multiple)
        return keep

    lo, hi = math.log(1e-9), math.log(1e9)  # log ε: small ε keeps every channel
    for _ in range(60):
        mid = (lo + hi) / 2
        if planned_params(graph, shapes, counts(math.exp(mid))) > target:
            lo = mid
        else:
            hi = mid
    eps = math.exp(lo)
    keep = refine_keep(graph, shapes, counts(eps), target, int(0.0025 * dense_params), channel_multiple)
    norms = channel_importance(model, graph)
    kept, scale = {}, {}
    for g in groups:
        k, s, p = keep[g.gid], sens[g.gid].double(), prob[g.gid]
        tie = norms[g.gid].double().numpy()
        if selection == "topk":
            order = np.lexsort((-tie, -s.numpy()))
            scale[g.gid] = torch.ones(g.size)
        else:
            times = arrival[g.gid]
            order = np.lexsort((-tie, times.numpy()))
            finite = times[torch.from_numpy(order[:k].copy())]
            finite = finite[torch.isfinite(finite)]
            m = float(samples_for_error(const[g.gid], eps))
            after = times[int(order[k])] if k < g.size else torch.tensor(math.inf, dtype=torch.float64)
            last = float(finite.max()) if finite.numel() else 0.0
            horizon = min(max(m, last), float(after)) if math.isfinite(float(after)) else max(m, last)
            extra = poisson(torch.where(p > 0, p * (horizon - times), 0.0), generator)
            gamma = torch.where(p > 0, (1.0 + extra) / (horizon * p).clamp(min=1e-300), 1.0)
            scale[g.gid] = gamma.float()
        kept[g.gid] = torch.sort(torch.from_numpy(order[:k].copy())).values
    return PfpPlan(graph, kept, scale, eps)


def _scale_consumers(model: nn.Module, plan: PfpPlan, zero_removed: bool) -> None:
    """Multiply every consumer's input slice of a channel by its factor (0 for removed channels if asked)."""
    with torch.no_grad():
        for name, (gid, mult) in plan.graph.consumers.items():
            if gid not in plan.kept:
                continue
            factor = plan.scale[gid].clone()
            if zero_removed:
                keep = torch.zeros_like(factor, dtype=torch.bool)
                keep[plan.kept[gid]] = True
                factor = torch.where(keep, factor, torch.zeros_like(factor))
            weight = model.get_submodule(name).weight
            shape = [1, len(factor), 1] + [1] * (weight.ndim - 2)
            view = weight.view(weight.shape[0], len(factor), mult, *weight.shape[2:])
            view.mul_(factor.reshape(shape).to(weight.dtype))


def mask_plan(model: nn.Module, plan: PfpPlan) -> nn.Module:
    """A copy of ``model`` of unchanged shapes whose consumers ignore the removed channels."""
    masked = copy.deepcopy(model)
    _scale_consumers(masked, plan, zero_removed=True)
    return masked


def apply_plan(model: nn.Module, plan: PfpPlan, example_input: torch.Tensor) -> nn.Module:
    """A physically smaller copy of ``model`` keeping ``plan.kept`` (consumer inputs rescaled)."""
    pruned = copy.deepcopy(model)
    _scale_consumers(pruned, plan, zero_removed=False)
    apply_keep(pruned, plan.graph, plan.kept)
    check_forward(pruned, example_input, "PFP")
    return pruned


def pfp_prune(model: nn.Module, x: torch.Tensor, ratio: float, dense_params: int, channel_multiple: int = 1,
              selection: str = "sample", seed: int = 0) -> nn.Module:
    """Return a physically smaller copy of ``model`` pruned by PFP to ratio ≈ ``ratio``.

    Args:
        model: the network (left unchanged); may already be FT/PFP-pruned.
        x: the sensitivity batch ``S`` (also used to trace shapes).
        ratio: target ``1 − params(result) / dense_params`` in (0, 1).
        dense_params: parameter count of the original dense network.
        channel_multiple: keep channel counts at multiples of this (as FT).
        selection: ``sample`` (importance sampling, rescaled) or ``topk`` (deterministic).
        seed: seed of the sampling.
    """
    plan = pfp_plan(model, x, ratio, dense_params, channel_multiple, selection, seed)
    return apply_plan(model, plan, x[:2])
