"""Pictures of rationales: the input beside the dense and the pruned SIS overlaid on it.

Needs matplotlib (``pip install 'sisguard[plot]'``), imported when a picture is drawn. Figures
are built without pyplot, so no GUI backend is touched and drawing is thread-safe.

>>> from sisguard.client.plot import plot_explanation
>>> plot_explanation(x, explanation, "rationale.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._results import Agreement, Explanation, VariantExplanation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["agreement_summary", "plot_explanation"]

# One colour per SIS of a collection (RGB in 0..1).
_COLOURS = np.array(
    [[0.95, 0.35, 0.1], [0.1, 0.55, 0.95], [0.2, 0.75, 0.3], [0.8, 0.2, 0.8], [0.95, 0.8, 0.1], [0.1, 0.8, 0.8]]
)


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "NO")


def _num(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}"


def agreement_summary(agreement: Agreement) -> str:
    """One line: IoU, cross-sufficiency both ways, top-1 agreement."""
    return (
        f"IoU {_num(agreement.iou_first)}"
        f" · dense SIS keeps pruned: {_yes(agreement.dense_sis_sufficient_for_pruned)}"
        f" ({_num(agreement.dense_sis_score_on_pruned)})"
        f" · pruned SIS keeps dense: {_yes(agreement.pruned_sis_sufficient_for_dense)}"
        f" ({_num(agreement.pruned_sis_score_on_dense)})"
        f" · top-1 {'agrees' if agreement.top1_agree else 'DIFFERS'}"
    )


def _as_image(x: NDArray[Any]) -> NDArray[np.float64]:
    """``[H, W]`` grey or ``[H, W, 3]`` RGB in 0..1 from one input of any shape."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[0] == 3:
        a = a.transpose(1, 2, 0)
    elif a.ndim == 3:
        a = a.mean(axis=0)
    elif a.ndim == 1:
        a = a[None, :]
    elif a.ndim != 2:
        a = a.reshape(a.shape[0], -1) if a.ndim > 0 else a.reshape(1, 1)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _plane(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A mask of one input reduced to the picture's plane (any channel counts)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 3:
        return np.asarray(m.any(axis=0), dtype=bool)
    if m.ndim == 1:
        return m[None, :]
    if m.ndim == 2:
        return m
    return m.reshape(m.shape[0], -1) if m.ndim > 0 else m.reshape(1, 1)


def _overlay(ax: Axes, image: NDArray[np.float64], variant: VariantExplanation | None, name: str) -> None:
    grey = image if image.ndim == 2 else image.mean(axis=2)
    rgb = np.repeat((0.25 + 0.35 * grey)[..., None], 3, axis=2)  # dimmed input
    if variant is None:
        ax.set_title(f"{name}: not explained", fontsize=9)
    else:
        for i, sis in enumerate(variant.sis):
            plane = _plane(sis.mask)
            if plane.shape == rgb.shape[:2]:
                rgb[plane] = 0.35 * rgb[plane] + 0.65 * _COLOURS[i % len(_COLOURS)]
        sizes = "+".join(str(len(s)) for s in variant.sis) or "0"
        score = f", f={variant.sis[0].score:.2f}" if variant.sis else ""
        ax.set_title(f"{name}: {variant.status.replace('_', ' ')}, {sizes} features{score}", fontsize=9)
    ax.imshow(np.clip(rgb, 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_explanation(
    x: ArrayLike, explanation: Explanation, path: str | Path | None = None, *, title: str | None = None, dpi: int = 120
) -> Figure:
    """Draw ``input | dense SIS | pruned SIS`` with the agreement numbers in the title.

    Each SIS of a collection gets its own colour over the dimmed input. Saves to ``path`` (any
    format matplotlib writes, by its suffix) when given; returns the figure.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("pictures need matplotlib: pip install 'sisguard[plot]'") from exc
    arr = np.asarray(x)
    if explanation.dense is not None and explanation.dense.sis:
        shape = explanation.dense.sis[0].mask.shape
    elif explanation.pruned is not None and explanation.pruned.sis:
        shape = explanation.pruned.sis[0].mask.shape
    else:
        shape = arr.shape
    if arr.shape != shape and arr.size == math.prod(shape):
        arr = arr.reshape(shape)  # e.g. a [1, *input_shape] batch of one
    image = _as_image(arr)
    fig = Figure(figsize=(9.0, 3.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 3)
    axes[0].imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest", vmin=0, vmax=1)
    axes[0].set_title("input", fontsize=9)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    _overlay(axes[1], image, explanation.dense, "dense")
    _overlay(axes[2], image, explanation.pruned, "pruned")
    head = title or f"{explanation.pair} · target {explanation.target} · τ {explanation.threshold:.2f}"
    lines = [head]
    if explanation.agreement is not None:
        lines.append(agreement_summary(explanation.agreement))
        if explanation.agreement.divergent:
            lines.append("DIVERGENT: " + ", ".join(r.replace("_", " ") for r in explanation.agreement.reasons))
    fig.suptitle("\n".join(lines), fontsize=10)
    if path is not None:
        fig.savefig(path)
    return fig
