"""The cluster report of an audit: ``clusters.json``, ``clusters.md`` and PNG prototypes.

Prototypes of image inputs (``[C, H, W]`` with C 1 or 3, or ``[H, W]``) are pictures: the mean
over a cluster's members of each member's input with only its SIS present (everything else 0),
drawn per model, so a lost cluster shows the dense model's pattern next to an empty pruned
panel. For other inputs a prototype is the features most often in the cluster's SIS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sisguard.audit.clusters import (
    Cluster,
    ClusterOptions,
    ClusterResult,
    agreement_signal,
    cluster_agreement,
    cluster_sis,
    summary_of,
)
from sisguard.audit.dataset import load_dataset
from sisguard.audit.errors import AuditError
from sisguard.audit.store import AuditStore, _write_atomic


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))


def _picture(x: np.ndarray) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3]`` for imshow."""
    if x.ndim == 2:
        return x
    return x[0] if x.shape[0] == 1 else np.clip(x.transpose(1, 2, 0), 0.0, 1.0)


def prototypes(
    result: ClusterResult, columns: dict[str, list], x: np.ndarray, groups: np.ndarray
) -> dict[tuple[int, int, str], np.ndarray]:
    """``(target, cluster, model) -> mean masked input`` of every model's members of every cluster."""
    pos = {int(i): k for k, i in enumerate(columns["id"])}
    out: dict[tuple[int, int, str], np.ndarray] = {}
    for c in result.clusters:
        for m, ids in c.members.items():
            if not ids:
                continue
            acc = np.zeros(groups.shape, dtype=np.float64)
            for i in ids:
                feats = np.asarray(columns[f"{m}_sis"][pos[i]][0], dtype=np.int64)
                keep = np.isin(groups, feats)
                acc += np.where(keep, x[i], 0.0)
            out[(c.target, c.index, m)] = acc / len(ids)
    return out


def _plot_class(
    target: int,
    clusters: list[Cluster],
    protos: dict[tuple[int, int, str], np.ndarray],
    models: tuple[str, ...],
    label: str,
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(clusters)
    fig, axes = plt.subplots(rows, len(models), figsize=(1.9 * len(models), 1.9 * rows + 0.4), dpi=80, squeeze=False)
    vmax = max((float(np.max(p)) for p in protos.values()), default=1.0) or 1.0
    for r, c in enumerate(clusters):
        for j, m in enumerate(models):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            proto = protos.get((c.target, c.index, m))
            if proto is not None:
                ax.imshow(_picture(proto), cmap="gray", vmin=0.0, vmax=vmax)
            else:
                ax.set_facecolor("#f4e4e4")
            tag = {"lost": " LOST", "gained": " GAINED"}.get(c.kind, "")
            ax.set_title(f"k{c.index} {m} n={c.count(m)}{tag if j == 0 else ''}", fontsize=7)
    fig.suptitle(f"class {label}: SIS clusters (mean masked input per model)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _cluster_doc(c: Cluster, models: tuple[str, ...]) -> dict[str, Any]:
    return {
        "target": c.target,
        "cluster": c.index,
        "kind": c.kind,
        "counts": {m: c.count(m) for m in models},
        "members": {m: sorted(c.members.get(m, [])) for m in models},
        "top_features": [{"feature": f, "share": s} for f, s in c.top_features()],
    }


def write_report(
    audit: Path,
    out: Path,
    options: ClusterOptions,
    *,
    dataset: Path | None = None,
    max_clusters_per_class: int = 8,
) -> dict[str, Any]:
    """Cluster an audit's SIS and write the report into ``out``; returns the JSON document."""
    store = AuditStore(audit)
    manifest = store.manifest()
    if manifest is None:
        raise AuditError(f"{audit} is not an audit folder (no manifest.json); run `sisguard audit` first")
    table = store.read()
    columns = table.to_pydict()
    groups = store.groups()
    models = tuple(manifest["variants"])
    num_features = int(manifest["explain"]["num_features"])
    result = cluster_sis(columns, models, num_features, options)
    shape = tuple(manifest["explain"]["input_shape"])
    out.mkdir(parents=True, exist_ok=True)

    images = _is_image(shape)
    x = None
    if images:
        path = Path(dataset or manifest["dataset"]["path"])
        data = load_dataset(path, shape, np.dtype(manifest["explain"]["input_dtype"]))
        if data.fingerprint != manifest["dataset"]["sha256"]:
            raise AuditError(f"dataset {path} is not the one audited in {audit} (its content differs)")
        x = data.x
    agreement = {m: cluster_agreement(result, m) for m in models if m != "dense"}
    rates = {
        m: (
            float(np.mean([v for v in a.values() if v is not None])) if any(v is not None for v in a.values()) else None
        )
        for m, a in agreement.items()
    }
    signal = agreement_signal(result, columns)
    doc: dict[str, Any] = {
        "audit": str(audit),
        "options": {"eps": options.eps, "min_samples": options.min_samples, "lost_ratio": options.lost_ratio},
        "summary": summary_of(result),
        "seconds": result.seconds,
        "cluster_agreement": rates,
        "cluster_agreement_signal": signal,
        "per_input": {m: [{"id": i, "same_cluster": a[i]} for i in sorted(a)] for m, a in agreement.items()},
        "clusters": [_cluster_doc(c, models) for c in result.clusters],
    }
    pictures: dict[int, str] = {}
    if images and x is not None:
        protos = prototypes(result, columns, x, groups)
        for target in sorted({c.target for c in result.clusters}):
            ranked = sorted(
                (c for c in result.clusters if c.target == target),
                key=lambda c: (c.kind == "shared", -c.size),
            )[:max_clusters_per_class]
            name = f"class-{target}.png"
            _plot_class(target, ranked, protos, models, str(target), out / name)
            pictures[target] = name
    _write_atomic(out / "clusters.json", (json.dumps(doc, indent=2) + "\n").encode())
    _write_atomic(out / "clusters.md", _markdown(doc, models, pictures).encode())
    return doc


def _markdown(doc: dict[str, Any], models: tuple[str, ...], pictures: dict[int, str]) -> str:
    s = doc["summary"]
    o = doc["options"]
    lines = [
        "# SIS clusters",
        "",
        f"Audit `{doc['audit']}`: first SIS of {', '.join(models)} clustered jointly per target class "
        f"(DBSCAN, Jaccard distance, eps {o['eps']}, min_samples {o['min_samples']}); a cluster is *lost* "
        f"when the pruned model has fewer than {o['lost_ratio']:.0%} of the dense model's members in it, "
        "*gained* the other way round.",
        "",
        f"{s['clusters']} clusters: {s['kinds'].get('lost', 0)} lost, {s['kinds'].get('gained', 0)} gained, "
        f"{s['kinds'].get('shared', 0)} shared. SIS clustered per model: "
        + ", ".join(f"{m} {s['sis'].get(m, 0)} (noise {s['noise'].get(m, 0)})" for m in models)
        + ".",
        "",
        "Per-input cluster agreement (dense SIS and the other model's SIS in the same cluster): "
        + ", ".join(f"{m} {'–' if v is None else f'{v:.1%}'}" for m, v in doc["cluster_agreement"].items())
        + ".",
        "",
    ]
    sig = doc["cluster_agreement_signal"]
    if "excess" in sig:
        lo, hi = sig["excess_ci95"]
        corr = sig["correlation_with_sis_iou_distance"]
        lines += [
            f"Cluster disagreement: pruned {sig['pruned_disagreement']:.1%}, "
            f"control {sig['control_disagreement']:.1%}; "
            f"excess {sig['excess']:+.1%} (95 % bootstrap interval {lo:+.1%} to {hi:+.1%}, over {sig['inputs']} "
            f"inputs); correlation with sis_iou_distance {'–' if corr is None else f'{corr:.2f}'}.",
            "",
        ]
    lines += [
        "| class | cluster | kind | " + " | ".join(models) + " | top features (share) |",
        "|---|---|---|" + "---|" * len(models) + "---|",
    ]
    for c in sorted(doc["clusters"], key=lambda c: (c["kind"] == "shared", c["target"], c["cluster"])):
        feats = ", ".join(f"{f['feature']} ({f['share']:.0%})" for f in c["top_features"][:6])
        lines.append(
            f"| {c['target']} | {c['cluster']} | {c['kind']} | "
            + " | ".join(str(c["counts"][m]) for m in models)
            + f" | {feats} |"
        )
    if pictures:
        lines += ["", "## Prototypes", ""]
        for target, name in sorted(pictures.items()):
            lines += [f"### class {target}", "", f"![class {target}]({name})", ""]
    return "\n".join(lines) + "\n"
