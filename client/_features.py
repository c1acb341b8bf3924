"""Feature groups and baselines for :meth:`Client.explain`.

A *feature* is a group of input elements that an explanation keeps or masks together. The server
builds the group map from a :class:`Features` spec; ``group_map(shape)`` builds the same map here
with the same code (the engine's :mod:`sisguard.sis.features`), to read a SIS:

>>> Features.patch(2, 2).group_map((1, 4, 4))[0].tolist()
[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
>>> Features.parse("patch:2x3")
Features(kind='patch', patch=(2, 3), map=None)

A *baseline* is what a masked feature is set to:

>>> Baseline.constant(0.5)
Baseline(kind='constant', value=0.5, tensor=None)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sisguard.sis import features as _groups

from ._errors import InvalidInput, translated

__all__ = ["Baseline", "Features", "element_groups", "patch_groups", "pixel_groups"]

FeatureKind = Literal["element", "pixel", "patch", "explicit"]
BaselineKind = Literal["zeros", "mean", "constant", "tensor", "blur", "pad_token", "mask_token"]
_PATCH = re.compile(r"^patch:(\d+)x(\d+)$")


@translated()
def element_groups(shape: Sequence[int]) -> NDArray[np.int32]:
    """One feature per input element, numbered in C order."""
    groups: NDArray[np.int32] = _groups.element_groups(shape)
    return groups


@translated()
def pixel_groups(shape: Sequence[int]) -> NDArray[np.int32]:
    """One feature per spatial position across channels: ``h * W + w`` in ``[C, H, W]`` inputs."""
    groups: NDArray[np.int32] = _groups.pixel_groups(shape)
    return groups


@translated()
def patch_groups(shape: Sequence[int], height: int, width: int) -> NDArray[np.int32]:
    """Patches of ``height x width`` pixels over the last two axes, numbered row-major.

    The last row and column of patches are smaller when the size does not divide the image.
    """
    groups: NDArray[np.int32] = _groups.patch_groups(shape, height, width)
    return groups


@dataclass(frozen=True)
class Features:
    """How input elements group into features. Build one with a class method."""

    kind: FeatureKind
    patch: tuple[int, int] | None = None
    map: NDArray[np.int32] | None = None

    @classmethod
    def element(cls) -> Features:
        """One feature per input element."""
        return cls("element")

    @classmethod
    def pixel(cls) -> Features:
        """One feature per spatial position, across channels (``[C, H, W]`` or ``[H, W]`` inputs)."""
        return cls("pixel")

    @classmethod
    def patches(cls, height: int, width: int | None = None) -> Features:
        """Patches of ``height x width`` pixels (square when ``width`` is omitted)."""
        w = height if width is None else width
        if int(height) < 1 or int(w) < 1:
            raise InvalidInput(f"patch size must be at least 1x1, got {height}x{w}")
        return cls("patch", patch=(int(height), int(w)))

    @classmethod
    def explicit(cls, group_map: ArrayLike) -> Features:
        """A map of integers broadcastable to one input; value ``g`` means feature ``g`` (``0..d-1``)."""
        g = np.asarray(group_map)
        if g.dtype == np.bool_ or not np.issubdtype(g.dtype, np.integer):
            raise InvalidInput(f"a group map must hold integers, got dtype {g.dtype}")
        if g.size == 0:
            raise InvalidInput("a group map must not be empty")
        if g.min() < 0 or g.max() > np.iinfo(np.int32).max:
            raise InvalidInput("group map values must be feature indices 0..d-1")
        return cls("explicit", map=g.astype(np.int32))

    @classmethod
    def parse(cls, spec: str) -> Features:
        """``"element"``, ``"pixel"`` or ``"patch:HxW"`` (the CLI's ``--features``)."""
        text = spec.strip().lower()
        if text in ("element", "pixel"):
            return cls(text)  # type: ignore[arg-type]
        m = _PATCH.match(text)
        if m:
            return cls.patches(int(m.group(1)), int(m.group(2)))
        raise InvalidInput(f"features must be 'element', 'pixel' or 'patch:HxW' (e.g. patch:2x2), got {spec!r}")

    @staticmethod
    def coerce(value: Features | str | ArrayLike) -> Features:
        """A :class:`Features` from itself, a spec string, or an explicit group map."""
        if isinstance(value, Features):
            return value
        if isinstance(value, str):
            return Features.parse(value)
        return Features.explicit(value)

    def group_map(self, shape: Sequence[int]) -> NDArray[np.int32]:
        """The feature of every element of an input of ``shape``, built locally as the server does."""
        if self.kind == "element":
            return element_groups(shape)
        if self.kind == "pixel":
            return pixel_groups(shape)
        if self.kind == "patch" and self.patch is not None:
            return patch_groups(shape, *self.patch)
        if self.map is None:
            raise InvalidInput(f"features {self.kind!r} need a patch size or a group map")
        with translated():
            groups: NDArray[np.int32] = _groups.explicit_groups(self.map, shape)
        return groups


@dataclass(frozen=True)
class Baseline:
    """What masked features are set to. Build one with a class method."""

    kind: BaselineKind
    value: float = 0.0
    tensor: NDArray[Any] | None = None

    @classmethod
    def zeros(cls) -> Baseline:
        return cls("zeros")

    @classmethod
    def mean(cls) -> Baseline:
        """The pair's configured mean input."""
        return cls("mean")

    @classmethod
    def blur(cls) -> Baseline:
        """The input itself, Gaussian-blurred with the pair's ``explain.baseline_blur_sigma``: masked
        pixels keep the coarse shape but lose detail, so the baseline alone rarely stays confident."""
        return cls("blur")

    @classmethod
    def constant(cls, value: float) -> Baseline:
        v = float(value)
        if not math.isfinite(v):
            raise InvalidInput(f"a baseline constant must be finite, got {value}")
        return cls("constant", value=v)

    @classmethod
    def of(cls, tensor: ArrayLike) -> Baseline:
        """A tensor of one input's shape."""
        t = np.asarray(tensor)
        if t.dtype.kind not in "biuf":
            raise InvalidInput(f"a baseline tensor must be numeric, got dtype {t.dtype}")
        return cls("tensor", tensor=t)

    @staticmethod
    def coerce(value: Baseline | str | float | ArrayLike) -> Baseline:
        """A :class:`Baseline` from itself, ``"zeros"``/``"mean"``, a number, or a tensor."""
        if isinstance(value, Baseline):
            return value
        if isinstance(value, str):
            if value == "zeros":
                return Baseline.zeros()
            if value == "mean":
                return Baseline.mean()
            if value == "blur":
                return Baseline.blur()
            if value in ("pad_token", "mask_token"):
                return Baseline(value)  # type: ignore[arg-type]
            raise InvalidInput(
                "baseline must be 'zeros', 'mean', 'blur', 'pad_token', 'mask_token', a number or a tensor, "
                f"got {value!r}"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Baseline.constant(value)
        return Baseline.of(value)
