"""Per-input divergence measures: how far a model ("other": the pruned model or the control) departs
from the dense model on one input. Pure numpy; every value is oriented so that **larger means more
divergent**, so the verdict can compare the pruned model's values with the control's on the same
inputs (docs/signal.md explains each measure and when to trust it).

From one explanation (dense and other explained on the same input with the same τ):

* ``cross_insufficiency`` — 1 when the dense model's first SIS does not keep the other model at τ.
* ``dense_sis_shortfall`` — τ minus the other model's score on the dense first SIS (a margin, not a
  yes/no: a SIS sits just above τ by construction, so the binary check is knife-edge).
* ``reverse_sis_shortfall`` — τ minus the dense score on the other model's first SIS.
* ``sis_iou_distance`` — 1 − Jaccard overlap of the two first SIS.
* ``deletion_gap`` — mean |f_dense − f_other| along the dense BackSelect path (features removed in
  the dense model's order): the area between the two deletion curves.
* ``rank_distance`` — (1 − Spearman) / 2 of the two BackSelect removal orders.

An explanation where the dense side is NOT_CONFIDENT or BASELINE_SUFFICIENT yields none of these (it
is reported as degenerate, never as agreement); the ones needing the other's SIS need it found.

From a probe (the clean input and shifted copies, outputs as probabilities):

* ``output_tv`` — total-variation distance of the two output distributions on the clean input.
* ``top1_disagreement`` — 1 when the top-1 classes differ on the clean input.
* ``disagreement/<shift>``, ``tv/<shift>`` — the same on the shifted copies (mean over copies).
* ``instability/<shift>`` — share of copies whose top-1 differs from the model's own top-1 on the
  clean input (label-free shift stability). Computed for the dense model too: the verdict compares
  the pruned model with the *more* unstable of dense and control, so a pruned model counts as
  damaged only when it is less stable than both its parent and a retrained unpruned copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from sisguard.sis.agreement import jaccard, rank_correlation
from sisguard.sis.backselect import SISResult

EXPLAIN_MEASURES = (
    "cross_insufficiency",
    "dense_sis_shortfall",
    "reverse_sis_shortfall",
    "sis_iou_distance",
    "deletion_gap",
    "rank_distance",
)
CLEAN_MEASURES = ("output_tv", "top1_disagreement")
SHIFT_FAMILIES = ("disagreement", "tv", "instability")
#: measures with a value for the dense model itself (the others compare a model *with* the dense one)
SELF_FAMILIES = ("instability",)


def measure_names(shift_names: Iterable[str]) -> tuple[str, ...]:
    """Every measure a pair with these probe shifts reports."""
    shifts = list(shift_names)
    return (*EXPLAIN_MEASURES, *CLEAN_MEASURES, *(f"{f}/{s}" for f in SHIFT_FAMILIES for s in shifts))


def is_self_measure(name: str) -> bool:
    return name.split("/", 1)[0] in SELF_FAMILIES


def measure_source(name: str) -> str:
    """``explain`` (needs a shadow explanation) or ``probe`` (needs a shift probe)."""
    return "explain" if name in EXPLAIN_MEASURES else "probe"


def resolve_margins(margins: Mapping[str, float], known: Sequence[str]) -> dict[str, float]:
    """Expand ``family/*`` entries over the known measures; an unknown name raises KeyError."""
    out: dict[str, float] = {}
    for name, margin in margins.items():
        if name.endswith("/*"):
            family = name[:-2]
            if family not in SHIFT_FAMILIES:
                raise KeyError(f"verdict margin {name!r}: unknown family; use one of {', '.join(SHIFT_FAMILIES)}")
            for m in known:
                if m.startswith(family + "/"):
                    out.setdefault(m, float(margin))
        elif name in known:
            out[name] = float(margin)
        else:
            raise KeyError(f"verdict margin for unknown measure {name!r}; known: {', '.join(known)}")
    for name, margin in margins.items():  # an explicit entry wins over a wildcard
        if not name.endswith("/*"):
            out[name] = float(margin)
    return out


# -- explanations -------------------------------------------------------------------------------


def explanation_measures(
    dense: SISResult,
    other: SISResult,
    *,
    threshold: float,
    other_on_dense_sis: float | None,
    dense_on_other_sis: float | None,
    other_on_dense_path: np.ndarray | None,
) -> dict[str, float]:
    """The explanation measures of ``other`` against ``dense`` that apply to this input (see module doc).

    ``other_on_dense_path`` holds the other model's target scores on the inputs along the dense
    model's first BackSelect round (one per removal, aligned with ``dense.backselect[0].scores``).
    """
    out: dict[str, float] = {}
    if dense.status != "found" or not dense.collection:
        return out
    d_sis = dense.collection[0].features
    if other_on_dense_sis is not None and math.isfinite(other_on_dense_sis):
        out["cross_insufficiency"] = float(other_on_dense_sis < threshold)
        out["dense_sis_shortfall"] = float(threshold - other_on_dense_sis)
    if other.status == "found" and other.collection:
        if dense_on_other_sis is not None and math.isfinite(dense_on_other_sis):
            out["reverse_sis_shortfall"] = float(threshold - dense_on_other_sis)
        out["sis_iou_distance"] = 1.0 - jaccard(d_sis, other.collection[0].features)
    if dense.backselect and other_on_dense_path is not None and len(other_on_dense_path):
        path = np.asarray(dense.backselect[0].scores, dtype=np.float64)
        theirs = np.asarray(other_on_dense_path, dtype=np.float64).reshape(-1)
        n = min(len(path), len(theirs))
        if n:
            out["deletion_gap"] = float(np.mean(np.abs(path[:n] - theirs[:n])))
    if dense.backselect and other.backselect:
        rho = rank_correlation(dense.backselect[0].order, other.backselect[0].order)
        if math.isfinite(rho):
            out["rank_distance"] = (1.0 - rho) / 2.0
    return out


# -- probes -------------------------------------------------------------------------------------


def tv_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise total-variation distance ``½ Σ |p − q|`` of two ``[rows, classes]`` distributions."""
    return 0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum(axis=1)


def probe_measures(
    clean: Mapping[str, np.ndarray], shifted: Mapping[str, Mapping[str, np.ndarray]], others: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Measure → variant → value for one probed input.

    ``clean[v]`` is ``[1, classes]`` (probabilities of variant ``v`` on the clean input), ``shifted[s][v]``
    ``[copies, classes]`` on the copies of shift ``s``; ``others`` are the variants compared with
    ``"dense"`` (``pruned``, and ``control`` when there is one). Instability also gets a ``dense`` value.
    """
    out: dict[str, dict[str, float]] = {"output_tv": {}, "top1_disagreement": {}}
    d0 = clean["dense"]
    for v in others:
        out["output_tv"][v] = float(tv_distance(d0, clean[v])[0])
        out["top1_disagreement"][v] = float(np.argmax(d0[0]) != np.argmax(clean[v][0]))
    for shift, outs in shifted.items():
        dense_top = outs["dense"].argmax(axis=1)
        dis, tv, inst = {}, {}, {}
        for v in others:
            dis[v] = float(np.mean(dense_top != outs[v].argmax(axis=1)))
            tv[v] = float(np.mean(tv_distance(outs["dense"], outs[v])))
        for v in ("dense", *others):
            inst[v] = float(np.mean(outs[v].argmax(axis=1) != np.argmax(clean[v][0])))
        out[f"disagreement/{shift}"], out[f"tv/{shift}"], out[f"instability/{shift}"] = dis, tv, inst
    return out
