"""Filter thresholding (FT): structured pruning that physically shrinks the network.

Per channel group (see :mod:`sisguard.prune.graph`) FT ranks the channels by the L1 norm
of their filters (summed over the producers of a group, each normalised by its mean), keeps
the same fraction of channels in every group, and slices the weights of the producers, the
BatchNorm layers and every consumer — so the resulting ``nn.Module`` has smaller tensors and
exports to a smaller, faster ONNX graph. The kept fraction is found by bisection so that
the prune ratio ``1 − params(pruned) / params(dense)`` lands on the target; a local search
then moves single channels to bring it within a fraction of a percent.

Example:
    >>> import torch
    >>> from sisguard.prune.models import resnet_cifar
    >>> net = resnet_cifar(width=8)
    >>> dense = sum(p.numel() for p in net.parameters())
    >>> small = ft_prune(net, torch.zeros(1, 3, 32, 32), ratio=0.5, dense_params=dense)
    >>> abs(1 - sum(p.numel() for p in small.parameters()) / dense - 0.5) < 0.01
    True
"""

from __future__ import annotations

import copy
import itertools
import math

import torch
from torch import nn

from sisguard.prune.errors import PruneError, UnsupportedModelError
from sisguard.prune.graph import ChannelGraph, analyse


def _param_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def planned_params(graph: ChannelGraph, shapes: dict[str, tuple[int, ...]], keep: dict[int, int]) -> int:
    """Number of parameters after keeping ``keep[gid]`` channels of each group."""
    dims: dict[str, dict[int, int]] = {}
    for pd in graph.param_dims:
        if pd.gid in keep:
            dims.setdefault(pd.name, {})[pd.dim] = keep[pd.gid] * pd.multiplier
    total = 0
    for name, shape in shapes.items():
        override = dims.get(name, {})
        total += math.prod(override.get(i, d) for i, d in enumerate(shape))
    return total


def max_ft_ratio(model: nn.Module, example_input: torch.Tensor, dense_params: int | None = None) -> float:
    """The largest prune ratio FT can reach (one channel left in every prunable group)."""
    graph = analyse(model, example_input)
    dense = dense_params or sum(p.numel() for p in model.parameters())
    keep = {g.gid: 1 for g in graph.prunable_groups()}
    return 1.0 - planned_params(graph, _param_shapes(model), keep) / dense


def plan_keep(graph: ChannelGraph, shapes: dict[str, tuple[int, ...]], target_params: int,
              tolerance: int = 0, multiple: int = 1) -> dict[int, int]:
    """Channels to keep per prunable group so that the parameter count is close to ``target_params``.

    Bisection over one kept fraction shared by all groups; when that misses the target by
    more than ``tolerance`` parameters (channels are coarse in small networks), a local
    search moves single channels (one group up or down, or one up and another down) while
    that brings the count closer, stopping as soon as it is within ``tolerance``.

    With ``multiple`` > 1 every kept count is a multiple of it (groups smaller than
    ``multiple`` stay whole): vectorised CPU kernels (ONNX Runtime's NCHWc blocks of 8 or
    16 channels) run much faster on such widths, at the price of a coarser reachable ratio.
    """
    if multiple < 1:
        raise PruneError(f"channel multiple must be >= 1, got {multiple}")
    groups = graph.prunable_groups()
    if not groups:
        raise UnsupportedModelError("FT cannot prune this model: it has no prunable channels")

    def keep_for(fraction: float) -> dict[int, int]:
        return {g.gid: snap_count(fraction * g.size, g.size, multiple) for g in groups}

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if planned_params(graph, shapes, keep_for(mid)) > target_params:
            hi = mid
        else:
            lo = mid
    return refine_keep(graph, shapes, keep_for(hi), target_params, tolerance, multiple)


def snap_count(count: float, size: int, multiple: int) -> int:
    """A kept channel count of a group of ``size``: ``count`` rounded up (to a multiple of ``multiple``)."""
    if size <= multiple:
        return size if multiple > 1 else max(1, min(size, math.ceil(count - 1e-9)))
    return min(size, max(multiple, multiple * math.ceil(count / multiple - 1e-9)))


def refine_keep(graph: ChannelGraph, shapes: dict[str, tuple[int, ...]], keep: dict[int, int],
                target_params: int, tolerance: int = 0, multiple: int = 1) -> dict[int, int]:
    """Local search from ``keep``: move ``multiple`` channels (one group up or down, or one up and
    another down) while that brings the parameter count closer to ``target_params``."""
    groups = [g for g in graph.prunable_groups() if g.gid in keep]
    keep = dict(keep)
    best = abs(planned_params(graph, shapes, keep) - target_params)
    step = multiple
    moves = [((g.gid, d),) for g in groups for d in (-step, step)]
    moves += [((a.gid, step), (b.gid, -step)) for a, b in itertools.permutations(groups, 2)]
    sizes = {g.gid: g.size for g in groups}
    for _ in range(200):
        if best <= tolerance:
            break
        candidate_best: dict[int, int] | None = None
        for move in moves:
            trial = dict(keep)
            for gid, delta in move:
                trial[gid] += delta
            if any(not min(step, sizes[gid]) <= trial[gid] <= sizes[gid] for gid, _ in move):
                continue
            err = abs(planned_params(graph, shapes, trial) - target_params)
            if err < best:
                best, candidate_best = err, trial
        if candidate_best is None:
            break
        keep = candidate_best
    return keep


def channel_importance(model: nn.Module, graph: ChannelGraph) -> dict[int, torch.Tensor]:
    """Per prunable group: an importance score per channel (normalised L1 norms of the filters)."""
    scores: dict[int, torch.Tensor] = {}
    for group in graph.prunable_groups():
        total = torch.zeros(group.size)
        for name in group.producers:
            weight = model.get_submodule(name).weight.detach()
            norms = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
            total += norms / (norms.mean() + 1e-12)
        scores[group.gid] = total
    return scores


def _slice_param(module: nn.Module, name: str, dim: int, index: torch.Tensor) -> None:
    param = getattr(module, name)
    if param is None:
        return
    new = param.detach().index_select(dim, index).clone()
    setattr(module, name, nn.Parameter(new, requires_grad=param.requires_grad))


def _slice_buffer(module: nn.Module, name: str, index: torch.Tensor) -> None:
    buf = getattr(module, name, None)
    if buf is not None:
        setattr(module, name, buf.index_select(0, index).clone())


def apply_keep(model: nn.Module, graph: ChannelGraph, kept: dict[int, torch.Tensor]) -> None:
    """Shrink ``model`` in place, keeping channel indices ``kept[gid]`` of each group."""
    for name, gid in graph.producers.items():
        if gid not in kept:
            continue
        module = model.get_submodule(name)
        _slice_param(module, "weight", 0, kept[gid])
        _slice_param(module, "bias", 0, kept[gid])
        if isinstance(module, nn.Linear):
            module.out_features = len(kept[gid])
        else:
            module.out_channels = len(kept[gid])  # type: ignore[assignment]
    for name, (gid, mult) in graph.consumers.items():
        if gid not in kept:
            continue
        module = model.get_submodule(name)
        index = (kept[gid][:, None] * mult + torch.arange(mult)[None, :]).reshape(-1)
        _slice_param(module, "weight", 1, index)
        if isinstance(module, nn.Linear):
            module.in_features = len(index)
        else:
            module.in_channels = len(index)  # type: ignore[assignment]
    for name, gid in graph.norms.items():
        if gid not in kept:
            continue
        module = model.get_submodule(name)
        _slice_param(module, "weight", 0, kept[gid])
        _slice_param(module, "bias", 0, kept[gid])
        _slice_buffer(module, "running_mean", kept[gid])
        _slice_buffer(module, "running_var", kept[gid])
        module.num_features = len(kept[gid])  # type: ignore[assignment]


def ft_prune(model: nn.Module, example_input: torch.Tensor, ratio: float, dense_params: int,
             channel_multiple: int = 1) -> nn.Module:
    """Return a physically smaller copy of ``model`` with prune ratio ≈ ``ratio``.

    Args:
        model: the network to prune (left unchanged); may already be FT-pruned.
        example_input: a batch of inputs used to trace shapes.
        ratio: target ``1 − params(result) / dense_params`` in (0, 1).
        dense_params: parameter count of the original dense network.
        channel_multiple: keep channel counts at multiples of this (see :func:`plan_keep`);
            1 hits the ratio most closely.

    Raises:
        UnsupportedModelError: a layer or operation FT cannot handle.
        PruneError: the ratio is out of reach.
    """
    if not 0.0 < ratio < 1.0:
        raise PruneError(f"prune ratio must lie in (0, 1), got {ratio}")
    graph = analyse(model, example_input)
    shapes = _param_shapes(model)
    target = round((1.0 - ratio) * dense_params)
    keep = plan_keep(graph, shapes, target, tolerance=int(0.0025 * dense_params), multiple=channel_multiple)
    scores = channel_importance(model, graph)
    kept = {gid: torch.sort(torch.topk(scores[gid], k).indices).values for gid, k in keep.items()}
    pruned = copy.deepcopy(model)
    apply_keep(pruned, graph, kept)
    check_forward(pruned, example_input, "FT")
    return pruned


def check_forward(pruned: nn.Module, example_input: torch.Tensor, method: str) -> None:
    """Run ``example_input`` through a physically shrunk model; raise UnsupportedModelError if it breaks."""
    was_training = pruned.training
    pruned.eval()
    try:
        with torch.no_grad():
            pruned(example_input)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UnsupportedModelError(
            f"{method} shrank the layers but the model's forward no longer runs (hard-coded widths?): {first}"
        ) from exc
    pruned.train(was_training)
