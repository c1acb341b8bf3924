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

__all__ = ["agreement_summary", "plot_explanation", "plot_features", "plot_text"]

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


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("pictures need matplotlib: pip install 'sisguard[plot]'") from exc
    return Figure


def _heading(explanation: Explanation, title: str | None) -> str:
    lines = [title or f"{explanation.pair} · target {explanation.target} · τ {explanation.threshold:.2f}"]
    if explanation.agreement is not None:
        lines.append(agreement_summary(explanation.agreement))
    return "\n".join(lines)


def _removal_scores(v: VariantExplanation, d: int) -> NDArray[np.float64]:
    """Per feature, the score right after BackSelect removed it (first round; NaN when not traced).
    Features removed last keep the score up longest: the higher, the more the model needs them."""
    out = np.full(d, np.nan)
    if v.backselect:
        trace = v.backselect[0]
        for f, s in zip(trace.order.tolist(), trace.scores.tolist(), strict=True):
            if 0 <= f < d:
                out[f] = s
    return out


def plot_features(
    x: ArrayLike,
    explanation: Explanation,
    path: str | Path | None = None,
    *,
    names: tuple[str, ...] | list[str] = (),
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    """Tabular inputs: per model, a bar per feature (named when ``names`` are given) of the score
    BackSelect was left with after removing it, the SIS features in colour, and each feature's
    value in its label. Ask for the BackSelect trace (``return_backselect=True``) to get the bars."""
    figure = _figure_class()
    arr = np.asarray(x).ravel()
    d = arr.size
    labels = [
        f"{names[i] if i < len(names) else i}\n{arr[i]:.3g}" for i in range(d)
    ]
    variants = explanation.variants
    fig = figure(figsize=(max(6.0, 0.7 * d + 2.0), 2.6 * max(1, len(variants)) + 0.8), dpi=dpi, layout="constrained")
    axes = fig.subplots(max(1, len(variants)), 1, squeeze=False)[:, 0]
    for ax, (name, v) in zip(axes, variants.items(), strict=False):
        scores = _removal_scores(v, d)
        colours = np.tile([0.7, 0.7, 0.7], (d, 1))
        for k, s in enumerate(v.sis):
            colours[np.asarray(s.features, dtype=int)] = _COLOURS[k % len(_COLOURS)]
        ax.bar(np.arange(d), np.nan_to_num(scores, nan=0.0), color=colours)
        ax.axhline(explanation.threshold, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(np.arange(d), labels, fontsize=8)
        ax.set_ylabel("score once removed", fontsize=8)
        sis = ", ".join(
            "{" + ", ".join(labels[f].split("\n")[0] for f in s.features.tolist()) + "}" for s in v.sis
        ) or "none"
        ax.set_title(f"{name}: {v.status.replace('_', ' ')} · SIS {sis} · τ dashed", fontsize=9)
    fig.suptitle(_heading(explanation, title), fontsize=10)
    if path is not None:
        fig.savefig(path)
    return fig


def _runs(tokens: Any, colour_of: NDArray[np.int64]) -> list[tuple[str, int]]:
    """Words as written (touching sub-word tokens of one colour joined) with their SIS index (-1: none)."""
    out: list[tuple[str, int]] = []
    prev_end = -1
    for i, tok in enumerate(tokens.tokens):
        a, b = tokens.offsets[i]
        piece = tokens.text[a:b] if b > a else tok
        k = int(colour_of[i])
        if out and b > a and a == prev_end and out[-1][1] == k:
            out[-1] = (out[-1][0] + piece, k)
        else:
            out.append((piece, k))
        prev_end = b
    return out


def plot_text(result: Any, path: str | Path | None = None, *, title: str | None = None, dpi: int = 120) -> Figure:
    """A :class:`~sisguard.client.text.TextExplanation` as a picture: the text once per model, the
    tokens of each SIS on a coloured background."""
    figure = _figure_class()
    tokens = result.tokens
    explanation: Explanation = result.explanation
    variants = explanation.variants
    rows = max(1, len(variants))
    fig = figure(figsize=(9.0, 0.9 * rows + 1.0), dpi=dpi, layout="constrained")
    ax = fig.subplots(1, 1)
    ax.set_axis_off()
    for r, (name, v) in enumerate(variants.items()):
        y = 1.0 - (r + 0.5) / rows
        colour_of = np.full(len(tokens.ids), -1)
        for k, s in enumerate(v.sis):
            colour_of[np.asarray(s.mask, dtype=bool).ravel()] = k
        ax.text(0.0, y, f"{name}:", fontsize=9, weight="bold", va="center", transform=ax.transAxes)
        xpos = 0.1
        for word, k in _runs(tokens, colour_of):
            box = None if k < 0 else {"facecolor": _COLOURS[k % len(_COLOURS)], "edgecolor": "none", "pad": 1.5}
            ax.text(xpos, y, word, fontsize=10, va="center", bbox=box, transform=ax.transAxes)
            xpos += 0.011 * len(word) + 0.014
    fig.suptitle(_heading(explanation, title), fontsize=10)
    if path is not None:
        fig.savefig(path)
    return fig
