"""Channel dependency analysis for filter thresholding (FT).

FT removes output channels of Conv/Linear layers. Removing a channel changes every tensor
that carries it: BatchNorm layers on it, the input slices of the layers that read it, and
all tensors added to it by residual connections (which must keep equal widths). This
module traces a model with ``torch.fx``, follows each channel space from its producers to
its consumers, and merges spaces joined by elementwise operations into one
:class:`ChannelGroup`. Anything it does not understand that touches a prunable channel
space raises :class:`~sisguard.prune.errors.UnsupportedModelError` naming the layer.

Example:
    >>> import torch
    >>> from sisguard.prune.models import resnet_cifar
    >>> graph = analyse(resnet_cifar(width=4), torch.zeros(1, 3, 32, 32))
    >>> sorted(g.size for g in graph.prunable_groups())[:3]
    [4, 4, 8]
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from sisguard.prune.errors import UnsupportedModelError

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
         nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
         nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                        nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Identity,
                        nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_ELEMENTWISE_FUNCTIONS = {torch.relu, F.relu, F.relu6, torch.sigmoid, torch.tanh, F.gelu, F.silu,
                          F.leaky_relu, F.elu, F.hardswish, F.dropout, torch.sigmoid, F.sigmoid}
_POOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
                   F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone", "relu_", "float"}
_BINARY = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv,
           torch.add, torch.sub, torch.mul}
_BINARY_METHODS = {"add", "add_", "sub", "mul", "mul_", "div"}
_SHAPE_METHODS = {"size", "dim"}


@dataclass
class ChannelGroup:
    """Channels shared by the outputs of ``producers`` (tied by residual additions)."""

    gid: int
    size: int
    producers: list[str] = field(default_factory=list)
    fixed_reason: str | None = None

    @property
    def prunable(self) -> bool:
        """Whether FT may remove channels of this group (it does not reach the model output)."""
        return self.fixed_reason is None


@dataclass(frozen=True)
class ParamDim:
    """Dimension ``dim`` of parameter ``name`` has ``group size × multiplier`` entries."""

    name: str
    dim: int
    gid: int
    multiplier: int


@dataclass
class ChannelGraph:
    """The result of :func:`analyse`: channel groups and where each one appears."""

    groups: dict[int, ChannelGroup]
    #: module name → group of its output channels (Conv/Linear)
    producers: dict[str, int]
    #: module name → (group of its input channels, spatial multiplier) (Conv/Linear)
    consumers: dict[str, tuple[int, int]]
    #: module name → group of its channels (BatchNorm)
    norms: dict[str, int]
    #: every parameter dimension that depends on a group
    param_dims: list[ParamDim]

    def prunable_groups(self) -> list[ChannelGroup]:
        """Groups that FT may shrink, in a stable order."""
        return [g for gid, g in sorted(self.groups.items()) if g.prunable]


@dataclass(frozen=True)
class _Chan:
    gid: int


@dataclass(frozen=True)
class _Flat:
    gid: int
    spatial: int


_State = _Chan | _Flat | None


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def add(self, x: int) -> None:
        self.parent[x] = x

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class _Analyser:
    """Walks the fx graph once, assigning a channel state to every node."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.uf = _UnionFind()
        self.sizes: dict[int, int] = {}
        self.producers: dict[str, int] = {}
        self.consumers: dict[str, tuple[int, int]] = {}
        self.norms: dict[str, int] = {}
        self.fixed: dict[int, str] = {}
        self.states: dict[fx.Node, _State] = {}

    # -- helpers -------------------------------------------------------------------------
    def _new_group(self, size: int) -> int:
        gid = len(self.sizes)
        self.uf.add(gid)
        self.sizes[gid] = size
        return gid

    def _state(self, arg: object) -> _State:
        return self.states.get(arg) if isinstance(arg, fx.Node) else None

    @staticmethod
    def _shape(node: object) -> tuple[int, ...] | None:
        if not isinstance(node, fx.Node):
            return None
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def _grouped_inputs(self, node: fx.Node) -> list[_State]:
        return [s for s in (self._state(a) for a in node.all_input_nodes) if s is not None]

    def _unsupported(self, node: fx.Node, what: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"FT cannot prune this model: {what} (at {node.name!r}) reads pruned channels and is not "
            "supported; supported are Conv/Linear/BatchNorm, activations, pooling, flatten and residual add"
        )

    # -- node kinds ----------------------------------------------------------------------
    def visit(self, node: fx.Node) -> None:
        if node.op in ("placeholder", "get_attr"):
            self.states[node] = None
        elif node.op == "output":
            for state in self._grouped_inputs(node):
                self.fixed.setdefault(state.gid, "reaches the model output")
        elif node.op == "call_module":
            self.states[node] = self._module(node)
        elif node.op == "call_function":
            self.states[node] = self._function(node, node.target, is_method=False)
        elif node.op == "call_method":
            self.states[node] = self._function(node, node.target, is_method=True)

    def _module(self, node: fx.Node) -> _State:
        name = str(node.target)
        module = self.gm.get_submodule(name)
        state = self._state(node.args[0]) if node.args else None
        kind = type(module).__name__
        if isinstance(module, (*_CONV, nn.Linear)):
            if name in self.producers:
                raise self._unsupported(node, f"layer {name!r} called more than once")
            if isinstance(module, _CONV) and module.groups != 1:
                raise self._unsupported(node, f"grouped convolution {name!r} ({kind}, groups={module.groups})")
            if isinstance(module, nn.Linear):
                in_shape, out_shape = self._shape(node.args[0]), self._shape(node)
                if in_shape is None or len(in_shape) != 2 or out_shape is None or len(out_shape) != 2:
                    raise self._unsupported(node, f"linear layer {name!r} on a tensor that is not [N, features]")
            if isinstance(state, _Chan):
                self.consumers[name] = (state.gid, 1)
            elif isinstance(state, _Flat):
                if not isinstance(module, nn.Linear):
                    raise self._unsupported(node, f"layer {name!r} ({kind}) on a flattened tensor")
                self.consumers[name] = (state.gid, state.spatial)
            size = module.out_channels if isinstance(module, _CONV) else module.out_features
            gid = self._new_group(size)
            self.producers[name] = gid
            return _Chan(gid)
        if isinstance(module, _NORM):
            if isinstance(state, _Flat):
                raise self._unsupported(node, f"normalisation {name!r} on a flattened tensor")
            if isinstance(state, _Chan):
                self.norms[name] = state.gid
            return state
        if isinstance(module, _ELEMENTWISE_MODULES):
            return state
        if isinstance(module, _POOL):
            if isinstance(state, _Flat):
                raise self._unsupported(node, f"pooling {name!r} on a flattened tensor")
            return state
        if isinstance(module, nn.Flatten):
            return self._flatten(node, state, module.start_dim, module.end_dim)
        if self._grouped_inputs(node):
            raise self._unsupported(node, f"layer {name!r} of type {kind}")
        return None

    def _flatten(self, node: fx.Node, state: _State, start: int, end: int) -> _State:
        if state is None or isinstance(state, _Flat):
            return state
        in_shape = self._shape(node.args[0])
        if start != 1 or end != -1 or in_shape is None:
            raise self._unsupported(node, f"flatten({start}, {end})")
        return _Flat(state.gid, math.prod(in_shape[2:]))

    def _function(self, node: fx.Node, target: object, is_method: bool) -> _State:
        grouped = self._grouped_inputs(node)
        first = self._state(node.args[0]) if node.args else None
        name = str(target) if is_method else getattr(target, "__name__", str(target))
        if not grouped:
            return None
        if (is_method and target in _ELEMENTWISE_METHODS) or (not is_method and target in _ELEMENTWISE_FUNCTIONS):
            return first
        if not is_method and target in _POOL_FUNCTIONS and isinstance(first, _Chan):
            return first
        if is_method and target in _SHAPE_METHODS:
            return None
        if not is_method and target is getattr:
            return None
        if (is_method and target in _BINARY_METHODS) or (not is_method and target in _BINARY):
            return self._binary(node, name)
        if (is_method and target == "flatten") or (not is_method and target is torch.flatten):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self._flatten(node, first, int(start), int(end))
        if (is_method and target in ("view", "reshape")) or (not is_method and target is torch.reshape):
            return self._reshape(node, first, name)
        if (is_method and target in ("mean", "sum", "amax")) or (not is_method and target in (torch.mean, torch.sum)):
            return self._reduce(node, first, name)
        raise self._unsupported(node, f"operation {name!r}")

    def _binary(self, node: fx.Node, name: str) -> _State:
        operands = [a for a in node.args if isinstance(a, fx.Node)]
        states = [self._state(a) for a in operands]
        grouped = [s for s in states if s is not None]
        kinds = {type(s) for s in grouped}
        if len(kinds) > 1:
            raise self._unsupported(node, f"{name!r} of a flattened and an unflattened tensor")
        for other in grouped[1:]:
            if isinstance(other, _Flat) and isinstance(grouped[0], _Flat) and other.spatial != grouped[0].spatial:
                raise self._unsupported(node, f"{name!r} of flattened tensors of different layouts")
            self.uf.union(grouped[0].gid, other.gid)
        for operand, state in zip(operands, states, strict=True):
            shape = self._shape(operand)
            if state is None and shape is not None and len(shape) >= 2 and shape[1] != 1:
                # Combined with a tensor whose channels FT cannot change: keep this group whole.
                self.fixed.setdefault(grouped[0].gid, f"combined with a fixed tensor by {name!r}")
        return grouped[0]

    def _reshape(self, node: fx.Node, state: _State, name: str) -> _State:
        in_shape, out_shape = self._shape(node.args[0]), self._shape(node)
        if in_shape is None or out_shape is None:
            raise self._unsupported(node, f"{name!r} with unknown shapes")
        if isinstance(state, _Flat) and out_shape == in_shape:
            return state
        if isinstance(state, _Chan) and len(out_shape) == 2 and out_shape[0] == in_shape[0]:
            return _Flat(state.gid, math.prod(in_shape[2:]))
        raise self._unsupported(node, f"{name!r} from {list(in_shape)} to {list(out_shape)}")

    def _reduce(self, node: fx.Node, state: _State, name: str) -> _State:
        in_shape = self._shape(node.args[0])
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if not isinstance(state, _Chan) or in_shape is None or dims is None:
            raise self._unsupported(node, f"{name!r} over unknown dimensions")
        dims_list = [dims] if isinstance(dims, int) else list(dims)  # type: ignore[arg-type]
        normalised = {d % len(in_shape) for d in dims_list}
        if normalised & {0, 1}:
            raise self._unsupported(node, f"{name!r} over the batch or channel dimension")
        return state

    # -- result --------------------------------------------------------------------------
    def result(self, model: nn.Module) -> ChannelGraph:
        groups: dict[int, ChannelGroup] = {}
        for name, gid in self.producers.items():
            root = self.uf.find(gid)
            group = groups.setdefault(root, ChannelGroup(root, self.sizes[gid]))
            if group.size != self.sizes[gid]:
                raise UnsupportedModelError(
                    f"FT cannot prune this model: layer {name!r} has {self.sizes[gid]} channels but is "
                    f"added to channels of width {group.size}"
                )
            group.producers.append(name)
        for gid, reason in self.fixed.items():
            groups[self.uf.find(gid)].fixed_reason = reason
        producers = {n: self.uf.find(g) for n, g in self.producers.items()}
        consumers = {n: (self.uf.find(g), m) for n, (g, m) in self.consumers.items()}
        norms = {n: self.uf.find(g) for n, g in self.norms.items()}
        param_dims: list[ParamDim] = []
        for name, gid in producers.items():
            module = model.get_submodule(name)
            param_dims.append(ParamDim(f"{name}.weight", 0, gid, 1))
            if getattr(module, "bias", None) is not None:
                param_dims.append(ParamDim(f"{name}.bias", 0, gid, 1))
        for name, (gid, mult) in consumers.items():
            param_dims.append(ParamDim(f"{name}.weight", 1, gid, mult))
        for name, gid in norms.items():
            module = model.get_submodule(name)
            for pname in ("weight", "bias"):
                if getattr(module, pname, None) is not None:
                    param_dims.append(ParamDim(f"{name}.{pname}", 0, gid, 1))
        return ChannelGraph(groups, producers, consumers, norms, param_dims)


def analyse(model: nn.Module, example_input: torch.Tensor) -> ChannelGraph:
    """Trace ``model`` on ``example_input`` (a batch) and return its channel groups.

    Raises:
        UnsupportedModelError: the model cannot be traced, or an operation that FT does
            not support reads a prunable channel space.
    """
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types for untraceable code
        raise UnsupportedModelError(f"FT needs a model torch.fx can trace: {type(exc).__name__}: {exc}") from exc
    was_training = gm.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    gm.train(was_training)
    analyser = _Analyser(gm)
    for node in gm.graph.nodes:
        analyser.visit(node)
    return analyser.result(model)
