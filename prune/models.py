"""Built-in example architectures and loading of user models.

* :func:`digits_cnn` — a small CNN for ``[1, 8, 8]`` inputs (scikit-learn digits);
* :func:`resnet_cifar` — a small ResNet-style CNN for ``[3, 32, 32]`` inputs, with
  BatchNorm, residual blocks and a configurable width;
* :func:`digits_mlp` — a wider fully connected network for ``[1, 8, 8]`` inputs (a second
  architecture on digits, about 50k parameters).

All are plain ``nn.Module`` trees that filter thresholding (FT) can shrink. A user model is
named ``package.module:factory``; the factory is called without arguments (or with
``num_classes`` when it accepts it) and must return an ``nn.Module``.

Example:
    >>> import torch
    >>> net = resnet_cifar(num_classes=8, width=8)
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from sisguard.prune.errors import PruneError


class DigitsCNN(nn.Module):
    """Two 3×3 conv layers, a max-pool, and a two-layer classifier for 8×8 inputs."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * width * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, 8, 8]`` inputs to ``[N, num_classes]`` logits."""
        x = torch.relu(self.conv1(x))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers with an identity or 1×1-projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """A small ResNet for 32×32 images: stem, three stages of residual blocks, linear head."""

    def __init__(
        self, num_classes: int = 10, width: int = 16, blocks_per_stage: int = 1, in_channels: int = 3
    ) -> None:
        super().__init__()
        if width < 1 or blocks_per_stage < 1:
            raise PruneError(f"resnet_cifar needs width >= 1 and blocks_per_stage >= 1, got {width}, "
                             f"{blocks_per_stage}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers: list[nn.Module] = []
        channels = width
        for stage, factor in enumerate((1, 2, 4)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width * factor, stride))
                channels = width * factor
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, H, W]`` images to ``[N, num_classes]`` logits."""
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class DigitsMLP(nn.Module):
    """Flatten, two hidden ReLU layers (``width`` and ``width // 2`` units), linear classifier."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 256, side: int = 8) -> None:
        super().__init__()
        if width < 2:
            raise PruneError(f"digits_mlp needs width >= 2, got {width}")
        self.fc1 = nn.Linear(in_channels * side * side, width)
        self.fc2 = nn.Linear(width, width // 2)
        self.fc3 = nn.Linear(width // 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, 8, 8]`` inputs to ``[N, num_classes]`` logits."""
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def digits_mlp(num_classes: int = 10, in_channels: int = 1, width: int = 256) -> DigitsMLP:
    """The built-in MLP for ``[1, 8, 8]`` digits (about 50k parameters at width 256)."""
    return DigitsMLP(num_classes=num_classes, in_channels=in_channels, width=width)


def digits_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8, hidden: int = 32) -> DigitsCNN:
    """The built-in CNN for ``[1, 8, 8]`` digits (about 9.8k parameters, 39 KB as ONNX, at width 8)."""
    return DigitsCNN(num_classes=num_classes, in_channels=in_channels, width=width, hidden=hidden)


def resnet_cifar(
    num_classes: int = 10, width: int = 16, blocks_per_stage: int = 1, in_channels: int = 3
) -> ResNetCifar:
    """The built-in ResNet-style CNN for ``[3, 32, 32]`` inputs; ``width`` channels in stage one."""
    return ResNetCifar(num_classes=num_classes, width=width, blocks_per_stage=blocks_per_stage,
                       in_channels=in_channels)


def builtin_architectures() -> dict[str, Callable[..., nn.Module]]:
    """Name → factory of the built-in architectures (each accepts ``num_classes`` and ``in_channels``)."""
    return {"digits_cnn": digits_cnn, "digits_mlp": digits_mlp, "resnet_cifar": resnet_cifar}


def _call_factory(factory: Callable[..., nn.Module], num_classes: int, in_channels: int) -> nn.Module:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs: dict[str, int] = {}
    if "num_classes" in params:
        kwargs["num_classes"] = num_classes
    if "in_channels" in params:
        kwargs["in_channels"] = in_channels
    return factory(**kwargs)


def build_model(
    arch: str | None = None,
    factory: str | None = None,
    state_dict: str | Path | None = None,
    num_classes: int = 10,
    in_channels: int = 1,
    width: int | None = None,
) -> nn.Module:
    """Build a built-in architecture (``arch``) or a user model (``factory="pkg.mod:fn"``).

    ``num_classes`` and ``in_channels`` are passed to factories that accept them; ``width``
    only to built-in architectures. ``state_dict`` is a path to a ``torch.save``'d state
    dict loaded strictly into the model.
    """
    if (arch is None) == (factory is None):
        raise PruneError("give exactly one of --arch (a built-in architecture) and --model (package.module:factory)")
    if arch is not None:
        archs = builtin_architectures()
        if arch not in archs:
            raise PruneError(f"unknown architecture {arch!r}: use one of {', '.join(archs)}")
        kwargs: dict[str, int] = {"num_classes": num_classes, "in_channels": in_channels}
        if width is not None:
            kwargs["width"] = width
        model = archs[arch](**kwargs)
    else:
        model = _call_factory(resolve_factory(str(factory)), num_classes, in_channels)
    if state_dict is not None:
        path = Path(state_dict)
        if not path.is_file():
            raise PruneError(f"state dict {str(path)!r} does not exist")
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise PruneError(f"state dict {str(path)!r} does not fit the model: {first}") from exc
    return model


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """Import ``package.module:factory`` and return the callable; errors name what is missing."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PruneError(f"model {spec!r} must be given as package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PruneError(f"cannot import module {module_name!r} of model {spec!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise PruneError(f"module {module_name!r} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]
