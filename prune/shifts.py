"""Distribution shifts of test inputs: noise at several levels and simple corruptions.

Each :class:`Shift` maps a batch ``[N, C, H, W]`` (or any ``[N, ...]`` for the noise shifts)
to a shifted copy, clipped to the value range of the training data. Noise is drawn from a
generator seeded per shift, so a report repeats exactly. Levels are fractions of the value
range, so the same list fits digits ([0, 1]) and other data.

Example:
    >>> import numpy as np
    >>> x = np.full((2, 1, 8, 8), 0.5, np.float32)
    >>> [s.name for s in default_shifts()][:3]
    ['clean', 'uniform-0.1', 'uniform-0.2']
    >>> round(float(apply_shift(Shift("brightness", 0.2), x, (0.0, 1.0), seed=0).max()), 4)
    0.7
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sisguard.prune.errors import PruneError
from sisguard.server.signal.shifts import blur

KINDS = ("clean", "uniform", "gaussian", "brightness", "contrast", "blur", "saltpepper")


@dataclass(frozen=True)
class Shift:
    """One shift: a kind from :data:`KINDS` and its level.

    * ``uniform`` — add U(−level, level)·range;
    * ``gaussian`` — add N(0, level²)·range;
    * ``brightness`` — add level·range;
    * ``contrast`` — scale deviations from each image's mean by ``level``;
    * ``blur`` — Gaussian blur with σ = ``level`` pixels over the last two axes;
    * ``saltpepper`` — set a ``level`` share of the elements to the range's ends.
    """

    kind: str
    level: float = 0.0

    @property
    def name(self) -> str:
        """``kind-level``, or ``clean``."""
        return "clean" if self.kind == "clean" else f"{self.kind}-{self.level:g}"


def default_shifts() -> list[Shift]:
    """Clean data, three uniform and three Gaussian noise levels, and four corruptions."""
    return [
        Shift("clean"),
        *(Shift("uniform", level) for level in (0.1, 0.2, 0.3)),
        *(Shift("gaussian", level) for level in (0.05, 0.1, 0.2)),
        Shift("brightness", 0.3),
        Shift("contrast", 0.5),
        Shift("blur", 0.8),
        Shift("saltpepper", 0.05),
    ]


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if x.ndim < 3:
        raise PruneError(f"blur needs inputs with two spatial axes, got shape {list(x.shape)}")
    return blur(x, sigma)  # the server's shift probes blur the same way


def apply_shift(shift: Shift, x: np.ndarray, value_range: tuple[float, float], seed: int) -> np.ndarray:
    """Return a shifted float32 copy of ``x``, clipped to ``value_range``."""
    lo, hi = value_range
    span = hi - lo if hi > lo else 1.0
    rng = np.random.default_rng([seed, KINDS.index(shift.kind), round(shift.level * 1e6)])
    if shift.kind == "clean":
        return x.copy()
    if shift.kind == "uniform":
        out = x + rng.uniform(-shift.level, shift.level, size=x.shape) * span
    elif shift.kind == "gaussian":
        out = x + rng.normal(0.0, shift.level, size=x.shape) * span
    elif shift.kind == "brightness":
        out = x + shift.level * span
    elif shift.kind == "contrast":
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        out = mean + shift.level * (x - mean)
    elif shift.kind == "blur":
        out = _blur(x, shift.level)
    elif shift.kind == "saltpepper":
        u = rng.random(size=x.shape)
        out = np.where(u < shift.level / 2, lo, np.where(u > 1 - shift.level / 2, hi, x))
    else:
        raise PruneError(f"unknown shift kind {shift.kind!r}: use one of {', '.join(KINDS)}")
    return np.clip(out, lo, hi).astype(np.float32)


def parse_shift(spec: str) -> Shift:
    """Parse ``kind-level`` (e.g. ``gaussian-0.1``) or ``clean``."""
    if spec == "clean":
        return Shift("clean")
    kind, _, level = spec.rpartition("-")
    try:
        shift = Shift(kind, float(level))
    except ValueError as exc:
        raise PruneError(f"shift {spec!r} must look like kind-level, e.g. gaussian-0.1") from exc
    if shift.kind not in KINDS:
        raise PruneError(f"unknown shift kind {kind!r}: use one of {', '.join(KINDS)}")
    return shift
