"""Writing an evaluation: ``report.json``, ``report.md`` and PNG plots.

Plots (matplotlib, Agg backend):

* ``prune_potential.png`` — prune potential P(δ) per shift, one bar per method;
* ``error_vs_ratio.png`` — error against prune ratio on clean data and a few shifts;
* ``agreement_vs_ratio.png`` — top-1 agreement, SIS IoU and cross-sufficiency against ratio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_METHOD_STYLE = {"ft": "-", "wt": "--", "pfp": "-.", "sipp": ":"}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _family(result: dict[str, Any], method: str) -> list[dict[str, Any]]:
    return sorted((m for m in result["models"] if m["method"] == method), key=lambda m: m["ratio"])


def plot_prune_potential(result: dict[str, Any], path: Path) -> None:
    """Bar chart: P(δ) per shift and method."""
    shifts = result["shifts"]
    methods = sorted(result["prune_potential"])
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=80)
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        values = [result["prune_potential"][method][s] for s in shifts]
        ax.bar([j + i * width for j in range(len(shifts))], values, width, label=method.upper())
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(shifts))])
    ax.set_xticklabels(shifts, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("prune potential P(δ)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Prune potential per shift (δ = {result['delta_pp']} pp) — {result['data']['name']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_error_vs_ratio(result: dict[str, Any], path: Path, max_shifts: int = 4) -> None:
    """Error (%) against prune ratio per method, for clean data and the first few shifts."""
    shifts = result["shifts"][:1] + result["shifts"][1:][:: max(1, len(result["shifts"]) // max_shifts)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=80)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, shift in enumerate(shifts[:max_shifts + 1]):
        for method in sorted(result["prune_potential"]):
            family = _family(result, method)
            xs = [0.0] + [m["ratio"] for m in family]
            ys = [100 * result["dense"]["errors"][shift]] + [100 * m["errors"][shift] for m in family]
            ax.plot(xs, ys, _METHOD_STYLE.get(method, ":"), marker="o", color=colours[k % len(colours)],
                    label=f"{method.upper()} {shift}")
    ax.set_xlabel("prune ratio")
    ax.set_ylabel("test error (%)")
    ax.set_title("Error against prune ratio (ratio 0 = dense)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_agreement_vs_ratio(result: dict[str, Any], path: Path) -> None:
    """Top-1 agreement (clean), SIS IoU and dense→pruned sufficiency against prune ratio."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for method in sorted(result["prune_potential"]):
        family = _family(result, method)
        ratios = [m["ratio"] for m in family]
        style = _METHOD_STYLE.get(method, ":")
        axes[0].plot(ratios, [m["functional"]["clean"]["top1_agreement"] for m in family], style, marker="o",
                     label=f"{method.upper()} clean")
        worst = [min(v["top1_agreement"] for v in m["functional"].values()) for m in family]
        axes[0].plot(ratios, worst, style, marker="x", label=f"{method.upper()} worst shift")
        rat = [(m["ratio"], m["rationale"]) for m in family if m.get("rationale") and m["rationale"]["iou"] is not None]
        if rat:
            axes[1].plot([r for r, _ in rat], [v["iou"] for _, v in rat], style, marker="o",
                         label=f"{method.upper()} IoU")
            axes[1].plot([r for r, _ in rat], [v["dense_to_pruned"] for _, v in rat], style, marker="s",
                         label=f"{method.upper()} dense SIS suffices")
    axes[0].set_title("Functional: top-1 agreement with dense")
    axes[1].set_title("Rationale (SIS) agreement")
    for ax in axes:
        ax.set_xlabel("prune ratio")
        ax.set_ylim(0, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    """The Markdown report."""
    shifts = result["shifts"]
    lines = [f"# Pruning evaluation — {result['data']['name']}", "",
             f"{result['data']['n_test']} test inputs; δ = {result['delta_pp']} percentage points; "
             f"noise seed {result['seed']}.", "",
             "## Error (%) per shift", "",
             "| model | ratio | " + " | ".join(shifts) + " |",
             "|---|---|" + "---|" * len(shifts),
             "| dense | 0 | " + " | ".join(_pct(result["dense"]["errors"][s]) for s in shifts) + " |"]
    for m in sorted(result["models"], key=lambda m: (m["method"], m["ratio"])):
        lines.append(f"| {m['name']} | {m['ratio']:.3f} | " + " | ".join(_pct(m["errors"][s]) for s in shifts) + " |")
    lines += ["", "## Prune potential P(δ)", "",
              "Largest prune ratio r such that every evaluated ratio ≤ r keeps its error within δ of the "
              "dense model's on the same shift (monotone; 0 when the smallest ratio already fails).", "",
              "| method | " + " | ".join(shifts) + " |", "|---|" + "---|" * len(shifts)]
    for method, per_shift in sorted(result["prune_potential"].items()):
        lines.append(f"| {method.upper()} | " + " | ".join(f"{per_shift[s]:.2f}" for s in shifts) + " |")
    lines += ["", "## Excess error (percentage points)", "",
              "(pruned error growth from clean to shift) − (dense error growth); > 0 means pruning hurts "
              "more under the shift.", "",
              "| model | " + " | ".join(shifts[1:]) + " |", "|---|" + "---|" * len(shifts[1:])]
    for m in sorted(result["models"], key=lambda m: (m["method"], m["ratio"])):
        lines.append(f"| {m['name']} | " + " | ".join(f"{100 * m['excess_error'][s]:+.2f}" for s in shifts[1:]) + " |")
    lines += ["", "## Functional agreement with the dense model", "",
              "| model | top-1 agreement (clean) | worst top-1 agreement (shift) | softmax TV (clean) "
              "| logit L2 mean (clean) |", "|---|---|---|---|---|"]
    for m in sorted(result["models"], key=lambda m: (m["method"], m["ratio"])):
        f = m["functional"]
        worst_shift = min(f, key=lambda s: f[s]["top1_agreement"])
        lines.append(f"| {m['name']} | {_pct(f['clean']['top1_agreement'])}% | "
                     f"{_pct(f[worst_shift]['top1_agreement'])}% ({worst_shift}) | {_num(f['clean']['softmax_tv'])} | "
                     f"{_num(f['clean']['logit_l2_mean'])} |")
    sis = result["sis"]
    lines += ["", "## Rationale agreement (SIS)", ""]
    if sis["samples"] == 0:
        lines.append("Skipped (`--sis-samples 0`).")
    else:
        lines += [f"First SIS of each model on {sis['samples']} clean test inputs; target class = dense top-1; "
                  f"threshold τ = {sis['threshold_fraction']} × the model's own score; masked features = 0.", "",
                  "| model | compared | IoU | dense SIS suffices for pruned | pruned SIS suffices for dense "
                  "| SIS size dense / pruned |", "|---|---|---|---|---|---|"]
        for m in sorted(result["models"], key=lambda m: (m["method"], m["ratio"])):
            r = m.get("rationale") or {}
            lines.append(f"| {m['name']} | {r.get('compared', 0)} | {_num(r.get('iou'))} | "
                         f"{_pct(r.get('dense_to_pruned'))}% | {_pct(r.get('pruned_to_dense'))}% | "
                         f"{_pct(r.get('dense_sis_size'))}% / {_pct(r.get('pruned_sis_size'))}% |")
    lines += ["", "## Plots", "", "![prune potential](prune_potential.png)", "",
              "![error vs ratio](error_vs_ratio.png)", "", "![agreement vs ratio](agreement_vs_ratio.png)", ""]
    return "\n".join(lines)


def write_report(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.json``, ``report.md`` and the three plots into ``out_dir``; return the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_prune_potential(result, out / "prune_potential.png")
    plot_error_vs_ratio(result, out / "error_vs_ratio.png")
    plot_agreement_vs_ratio(result, out / "agreement_vs_ratio.png")
    md = out / "report.md"
    md.write_text(markdown(result))
    return md


def markdown_over_seeds(summary: dict[str, Any]) -> str:
    """The Markdown report of :func:`sisguard.prune.evaluate.potential_over_seeds`."""
    shifts = summary["shifts"]
    seeds = ", ".join(str(s) for s in summary["seeds"])
    level = round(100 * summary["confidence"])
    lines = [f"# Prune potential over seeds — {summary['data']['name']}", "",
             f"One family per training seed ({seeds}); δ = {summary['delta_pp']} percentage points; potential "
             "computed the monotone way (largest ratio up to which every evaluated ratio stays within δ). "
             f"Cells: mean [{level} % Student-t interval] (min–max over seeds). Each seed's full report is in "
             "`seed-<s>/report.md`.", "",
             "| method | " + " | ".join(shifts) + " |", "|---|" + "---|" * len(shifts)]
    for method, per_shift in sorted(summary["prune_potential"].items()):
        cells = []
        for shift in shifts:
            v = per_shift[shift]
            interval = "–" if v["t_low"] is None else f"{v['t_low']:.2f}, {v['t_high']:.2f}"
            cells.append(f"{v['mean']:.2f} [{interval}] ({v['min']:.2f}–{v['max']:.2f})")
        lines.append(f"| {method.upper()} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", "", "| method | seed | " + " | ".join(shifts) + " |",
              "|---|---|" + "---|" * len(shifts)]
    for method, per_shift in sorted(summary["prune_potential"].items()):
        for i, seed in enumerate(summary["seeds"]):
            lines.append(f"| {method.upper()} | {seed} | "
                         + " | ".join(f"{per_shift[s]['values'][i]:.2f}" for s in shifts) + " |")
    return "\n".join(lines) + "\n"


def write_seed_report(summary: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.json`` and ``report.md`` of the potential over seeds into ``out_dir``; return the .md path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = out / "report.md"
    md.write_text(markdown_over_seeds(summary))
    return md
