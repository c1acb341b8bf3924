"""Empirical sensitivities of weights (SiPP) and channels (PFP), and the sampling error bounds.

Both data-informed methods ask the same question of a small batch ``S`` of training inputs:
how large a share of a unit's pre-activation does one weight (SiPP) or one input channel
(PFP) contribute, at most, over ``S``?

**Weights** (:func:`weight_sensitivities`). For a Linear or Conv layer with weights ``W``
(``[out, in·kh·kw]`` after flattening the kernel) and an input patch ``a`` (``F.unfold`` of
the layer input for a conv, the input vector for a Linear layer), the pre-activation without
bias is ``z_i = Σ_k w_ik a_k``. Signs are handled as in Baykal et al.: the positive and the
negative weights of a neuron form two separate sums, ``z⁺_i = Σ_{w_ik>0} w_ik a_k`` and
``z⁻_i = Σ_{w_ik<0} w_ik a_k``, and inputs with negative entries are split into two
non-negative points ``relu(a)`` and ``relu(−a)``. Every term of ``z⁺`` (``z⁻``) then has the
same sign, and the sensitivity

    s_ij = max over x ∈ S, patches p, and the two input halves of  w_ij a_j / z^{sign(w_ij)}_i

lies in [0, 1] (0 where the sum is 0). A conv layer's patches are its output positions, so
``s_ij`` is the largest share the weight has in any output pixel of its filter.

**Channels** (:func:`channel_sensitivities`). PFP removes output channels of a producer by
removing the matching inputs of every consumer (see :mod:`sisguard.prune.graph`). The
sensitivity of channel ``c`` is its whole contribution to a consumer's pre-activation —
summed over the kernel positions (conv) or the flattened block (Linear after ``flatten``) —
relative to the same-sign sum, maximised over ``S``, over output units and patches, over the
two signs and over all consumers of the channel's group.

**Bounds** (:func:`error_from_samples`, :func:`samples_for_error`). Sampling ``m`` weights
(channels) of a unit from ``p_j = s_j / S`` with ``S = Σ_j s_j`` gives, by Bernstein's
inequality, a relative error ``ε`` with probability ``1 − δ`` once
``m ≥ K (6 + 2ε) S log(8η/δ) / ε²`` (``K = 3``, ``η`` the number of pre-activations covered by
the union bound). Solving for ``ε`` gives ``ε(m) = (c + √(c² + 6cm)) / m`` with
``c = K S log(8η/δ)``.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[1.0, 3.0]]))
    >>> sens = weight_sensitivities(torch.nn.Sequential(layer), torch.tensor([[1.0, 1.0], [3.0, 1.0]]))
    >>> sens["0.weight"].tolist()   # max(1/4, 3/6) and max(3/4, 3/6)
    [[0.5, 0.75]]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sisguard.prune.errors import DataMismatchError, PruneError, UnsupportedModelError
from sisguard.prune.graph import ChannelGraph

#: Bernstein constant and failure probability of the sampling bounds (as in the papers' code)
BOUND_K = 3.0
BOUND_DELTA = 1e-16
#: number of layer-input elements processed at once (bounds the memory of the sensitivity pass)
_CHUNK_ELEMENTS = 4_000_000

_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def sensitivity_inputs(x_train: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """``n`` training inputs drawn without replacement (seeded): the batch ``S``.

    Raises:
        DataMismatchError: the training split has fewer than ``n`` samples.
    """
    if n < 1:
        raise PruneError(f"the sensitivity batch needs at least 1 input, got {n}")
    if len(x_train) < n:
        raise DataMismatchError(
            f"the sensitivities need {n} training inputs (--sensitivity-samples) but the dataset has only "
            f"{len(x_train)}; lower --sensitivity-samples or give more data"
        )
    index = np.sort(np.random.default_rng(seed).choice(len(x_train), size=n, replace=False))
    return torch.from_numpy(np.ascontiguousarray(x_train[index]))


def sensitivity_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name → every Linear/Conv layer (the layers SiPP sparsifies).

    Raises:
        UnsupportedModelError: a layer SiPP cannot compute sensitivities for (Conv3d, grouped
            convolutions, padding other than zeros).
    """
    layers: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv3d):
            raise UnsupportedModelError(f"SiPP cannot prune this model: layer {name!r} is a Conv3d "
                                        "(supported: Linear, Conv1d, Conv2d)")
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            if module.groups != 1:
                raise UnsupportedModelError(f"SiPP cannot prune this model: grouped convolution {name!r} "
                                            f"(groups={module.groups})")
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise UnsupportedModelError(f"SiPP cannot prune this model: layer {name!r} uses padding "
                                            f"{module.padding!r}/{module.padding_mode!r} (needs numeric zero padding)")
        if isinstance(module, _SUPPORTED):
            layers[name] = module
    if not layers:
        raise UnsupportedModelError("SiPP cannot prune this model: it has no Linear or Conv layers")
    return layers


def _split_signs(a: torch.Tensor) -> torch.Tensor:
    """Stack ``relu(a)`` and ``relu(−a)`` along the batch axis when ``a`` has negative entries."""
    if bool((a >= 0).all()):
        return a
    return torch.cat((a.clamp(min=0), (-a).clamp(min=0)))


def _patches(module: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """Layer input as ``[points, in·kh·kw, patches]``."""
    if isinstance(module, nn.Linear):
        return a.reshape(-1, a.shape[-1], 1)
    if isinstance(module, nn.Conv1d):
        a4 = a.unsqueeze(2)
        return F.unfold(a4, (1, module.kernel_size[0]), dilation=(1, module.dilation[0]),
                        padding=(0, module.padding[0]), stride=(1, module.stride[0]))  # type: ignore[index]
    return F.unfold(a, module.kernel_size, dilation=module.dilation, padding=module.padding,  # type: ignore[arg-type]
                    stride=module.stride)


def _inverse(z: torch.Tensor) -> torch.Tensor:
    """``1/z`` where ``z ≠ 0`` (then every term of the same-sign sum shares its sign), else 0."""
    safe = torch.where(z == 0, torch.ones_like(z), z)
    return torch.where(z == 0, torch.zeros_like(z), 1.0 / safe)


def _weight_sens_update(module: nn.Module, a: torch.Tensor, out: torch.Tensor, patch_mean: bool = False) -> None:
    """Fold one chunk of inputs into ``out`` (``[out_units, in·kh·kw]``, running max)."""
    weight = module.weight.detach().reshape(module.weight.shape[0], -1)  # type: ignore[union-attr]
    pos, neg = weight.clamp(min=0), weight.clamp(max=0)
    patches = _patches(module, _split_signs(a.detach()))          # [n, K, P]
    inv_pos = _inverse(torch.einsum("ok,nkp->nop", pos, patches))  # ≥ 0
    inv_neg = -_inverse(torch.einsum("ok,nkp->nop", neg, patches))  # ≥ 0 (z⁻ < 0)
    n, k, p = patches.shape
    if patch_mean:  # mean over patches (one product per point), then max over points
        mean_pos = torch.einsum("nkp,nop->nok", patches, inv_pos).amax(dim=0) / p
        mean_neg = torch.einsum("nkp,nop->nok", patches, inv_neg).amax(dim=0) / p
        torch.maximum(out, pos * mean_pos - neg * mean_neg, out=out)
        return
    outs = weight.shape[0]
    block = max(1, _CHUNK_ELEMENTS // max(1, n * k * p))
    for start in range(0, outs, block):
        sl = slice(start, start + block)
        # max over points and patches of a_kp / |z_op|, separately for the two signs
        best_pos = (patches[:, None, :, :] * inv_pos[:, sl, None, :]).amax(dim=(0, 3))
        best_neg = (patches[:, None, :, :] * inv_neg[:, sl, None, :]).amax(dim=(0, 3))
        sens = pos[sl] * best_pos - neg[sl] * best_neg
        torch.maximum(out[sl], sens, out=out[sl])


def _run_chunks(model: nn.Module, x: torch.Tensor, hooks: dict[nn.Module, Callable[..., None]]) -> None:
    """Forward ``x`` chunk by chunk in eval mode with the forward hooks installed."""
    handles = [m.register_forward_hook(h) for m, h in hooks.items()]
    was_training = model.training
    model.eval()
    per_sample = max(1, math.prod(x.shape[1:]))
    chunk = max(1, min(len(x), 64, _CHUNK_ELEMENTS // (per_sample * 64)))
    try:
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                model(x[start : start + chunk])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def _weight_name(layer: str) -> str:
    return f"{layer}.weight" if layer else "weight"


def weight_sensitivities(model: nn.Module, x: torch.Tensor, patch_mean: bool = False) -> dict[str, torch.Tensor]:
    """Weight name → SiPP sensitivity of every entry (same shape as the weight, values in [0, 1]).

    ``patch_mean`` averages a conv weight's share over the patches of each input before the
    max over inputs (the deterministic variant's ranking: the max over hundreds of patches
    inflates conv weights against Linear ones, which have one patch).
    """
    return weight_sensitivities_and_units(model, x, patch_mean)[0]


def weight_sensitivities_and_units(model: nn.Module, x: torch.Tensor, patch_mean: bool = False
                                   ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """:func:`weight_sensitivities` and, per weight, ``η``: the layer's pre-activations per sample."""
    layers = sensitivity_layers(model)
    sens = {name: torch.zeros(m.weight.shape[0], m.weight[0].numel()) for name, m in layers.items()}
    eta = dict.fromkeys(layers, 1)

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            _weight_sens_update(module, inputs[0], sens[name], patch_mean)
            eta[name] = max(eta[name], output[0].numel() if output.ndim > 1 else 1)
        return hook

    _run_chunks(model, x, {m: hook_for(name) for name, m in layers.items()})
    return ({_weight_name(name): sens[name].reshape(layers[name].weight.shape) for name in layers},
            {_weight_name(name): eta[name] for name in layers})


def _channel_contributions(module: nn.Module, a: torch.Tensor, weight: torch.Tensor,
                           channels: int, multiplier: int) -> torch.Tensor:
    """Per input channel ``c``: its contribution to every pre-activation, ``[n, channels, out, patches]``."""
    if isinstance(module, nn.Linear):
        flat = a.reshape(-1, channels, multiplier)                                # [n, C, M]
        w = weight.reshape(weight.shape[0], channels, multiplier)                 # [O, C, M]
        return torch.einsum("ocm,ncm->nco", w, flat).unsqueeze(-1)
    outs = weight.shape[0]
    if isinstance(module, nn.Conv1d):
        grouped = weight.transpose(0, 1).reshape(channels * outs, 1, weight.shape[-1])
        res = F.conv1d(a, grouped, stride=module.stride, padding=module.padding,  # type: ignore[arg-type]
                       dilation=module.dilation, groups=channels)
    else:
        grouped = weight.transpose(0, 1).reshape(channels * outs, 1, *weight.shape[2:])
        res = F.conv2d(a, grouped, stride=module.stride, padding=module.padding,  # type: ignore[arg-type]
                       dilation=module.dilation, groups=channels)
    return res.reshape(a.shape[0], channels, outs, -1)


def _channel_sens_update(module: nn.Module, a: torch.Tensor, multiplier: int, out: torch.Tensor) -> None:
    weight = module.weight.detach()  # type: ignore[union-attr]
    channels = out.numel()
    a = _split_signs(a.detach())
    best = torch.zeros(channels)
    for part in (weight.clamp(min=0), weight.clamp(max=0)):
        contrib = _channel_contributions(module, a, part, channels, multiplier)  # [n, C, O, P], one sign
        ratio = contrib * _inverse(contrib.sum(dim=1, keepdim=True))              # ≥ 0, ≤ 1
        best = torch.maximum(best, ratio.amax(dim=(0, 2, 3)))
    torch.maximum(out, best, out=out)


def channel_sensitivities(model: nn.Module, graph: ChannelGraph,
                          x: torch.Tensor) -> tuple[dict[int, torch.Tensor], dict[int, int]]:
    """PFP sensitivities per prunable group: ``(gid → [size] sensitivities, gid → η)``.

    ``η`` counts the pre-activations (output units × patches of every consumer) that the
    group's channels feed — the union bound of the sampling guarantee runs over them.
    A group without consumers gets uniform sensitivities.
    """
    groups = {g.gid: g for g in graph.prunable_groups()}
    sens = {gid: torch.zeros(g.size) for gid, g in groups.items()}
    units: dict[str, tuple[int, int]] = {}  # consumer → (group, pre-activations per sample)
    hooks: dict[nn.Module, Callable[..., None]] = {}
    for name, (gid, mult) in graph.consumers.items():
        if gid not in groups:
            continue
        module = model.get_submodule(name)
        if not isinstance(module, _SUPPORTED):
            raise UnsupportedModelError(f"PFP cannot prune this model: consumer {name!r} is a "
                                        f"{type(module).__name__} (supported: Linear, Conv1d, Conv2d)")

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor,
                 gid: int = gid, mult: int = mult, name: str = name) -> None:
            _channel_sens_update(mod, inputs[0], mult, sens[gid])
            units[name] = (gid, output[0].numel() if output.ndim > 1 else 1)
        hooks[module] = hook
    _run_chunks(model, x, hooks)
    eta = dict.fromkeys(groups, 1)
    for gid, count in units.values():
        eta[gid] += count
    for values in sens.values():
        if float(values.sum()) <= 0.0:
            values.fill_(1.0)
    return sens, eta


def poisson(rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson draws of ``rate`` (float64); rates above 1e6 use the normal approximation (exact
    sampling overflows there, and the relative spread is below 0.1 %)."""
    rate = rate.double().nan_to_num(0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
    small = rate <= 1e6
    exact = torch.poisson(torch.where(small, rate, torch.zeros_like(rate)), generator=generator)
    normal = torch.randn(rate.shape, generator=generator, dtype=torch.float64)
    approx = (rate + rate.sqrt() * normal).round().clamp(min=0.0)
    return torch.where(small, exact, approx)


def bound_constant(total_sensitivity: torch.Tensor | float, eta: torch.Tensor | float) -> torch.Tensor:
    """``c = K · S · log(8η/δ)`` of the sample-complexity bound (elementwise)."""
    s = torch.as_tensor(total_sensitivity, dtype=torch.float64)
    e = torch.as_tensor(eta, dtype=torch.float64).clamp(min=1.0)
    return BOUND_K * s * torch.log(8.0 * e / BOUND_DELTA)


def error_from_samples(c: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Relative error bound ``ε(m) = (c + √(c² + 6cm)) / m`` after ``m`` samples."""
    return (c + torch.sqrt(c * c + 6.0 * c * m)) / m


def samples_for_error(c: torch.Tensor, eps: float) -> torch.Tensor:
    """Samples ``m = c (6 + 2ε) / ε²`` that guarantee relative error ``ε``."""
    return c * (6.0 + 2.0 * eps) / (eps * eps)
