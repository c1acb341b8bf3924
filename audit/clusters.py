"""SIS clusters: the global patterns a model's decisions rest on, and which ones pruning changed.

As in the SIS paper (Carter et al., 2019, section 5), each input's first SIS is a set of features,
and sets that many inputs share reveal general principles of the model's decisions. Per target
class (the dense model's top-1, the class every model of the audit was explained for), the first
SIS of the dense, the pruned and the control model are clustered **together** with DBSCAN over
the Jaccard distance ``1 - |A ∩ B| / |A ∪ B|`` between feature sets. Clustering the models jointly
makes their clusters comparable: a cluster holds SIS of some models and not others, so

* a **lost** cluster has dense members but (almost) no pruned members — a pattern the pruned model
  no longer uses (``n_pruned < lost_ratio * n_dense``);
* a **gained** (pruned-only) cluster is the reverse;
* the control's count in the same cluster says whether retraining alone also moves it;
* **per-input cluster agreement**: the input's dense SIS and pruned SIS fall in the same cluster.

Distances are computed in row blocks and only pairs within ``eps`` are kept (a sparse radius
graph), so memory grows with the number of close pairs, not with ``n²``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sisguard.audit.errors import AuditError


@dataclass(frozen=True)
class ClusterOptions:
    """DBSCAN radius and core size, and when a cluster counts as lost or gained."""

    eps: float = 0.3
    min_samples: int = 3
    lost_ratio: float = 0.25
    block_rows: int = 1024

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise AuditError(f"eps is a Jaccard distance in [0, 1), got {self.eps}")
        if self.min_samples < 1:
            raise AuditError(f"min_samples must be at least 1, got {self.min_samples}")
        if not 0.0 <= self.lost_ratio <= 1.0:
            raise AuditError(f"lost_ratio must be in [0, 1], got {self.lost_ratio}")


@dataclass
class Cluster:
    """One joint cluster of one class: its members per model and what they share."""

    target: int
    index: int
    members: dict[str, list[int]]  # model -> input ids
    frequency: np.ndarray = field(repr=False)  # per feature: share of members whose SIS holds it
    kind: str = "shared"  # shared, lost, gained

    def count(self, model: str) -> int:
        return len(self.members.get(model, ()))

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.members.values())

    def top_features(self, k: int = 10) -> list[tuple[int, float]]:
        order = np.argsort(-self.frequency, kind="stable")[:k]
        return [(int(f), float(self.frequency[f])) for f in order if self.frequency[f] > 0]


@dataclass
class ClusterResult:
    options: ClusterOptions
    models: tuple[str, ...]
    clusters: list[Cluster]
    #: model -> input id -> cluster (``(target, index)``, or None for noise) of its first SIS
    assignment: dict[str, dict[int, tuple[int, int] | None]]
    seconds: float = 0.0


def radius_graph(sets: np.ndarray, eps: float, block_rows: int = 1024) -> Any:
    """Sparse matrix of Jaccard distances ``<= eps`` between the rows of a boolean ``(n, d)`` matrix
    (explicit zeros kept: identical sets are neighbours). Every row must hold at least one feature."""
    import scipy.sparse as sp

    b = np.asarray(sets, dtype=np.float32)
    n = b.shape[0]
    sizes = b.sum(axis=1)
    if n and sizes.min() <= 0:
        raise AuditError("every SIS to cluster must hold at least one feature")
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for start in range(0, n, block_rows):
        block = b[start : start + block_rows]
        inter = block @ b.T
        union = sizes[start : start + block_rows, None] + sizes[None, :] - inter
        dist = 1.0 - inter / union
        r, c = np.nonzero(dist <= eps + 1e-7)
        rows.append(r + start)
        cols.append(c)
        vals.append(np.maximum(dist[r, c], 0.0))
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float64)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float64), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def dbscan(sets: np.ndarray, options: ClusterOptions) -> np.ndarray:
    """DBSCAN labels (−1: noise) of boolean feature sets under the Jaccard distance."""
    from sklearn.cluster import DBSCAN

    if len(sets) == 0:
        return np.zeros(0, dtype=np.int64)
    graph = radius_graph(sets, options.eps, options.block_rows)
    labels: np.ndarray = DBSCAN(
        eps=options.eps + 1e-7, min_samples=options.min_samples, metric="precomputed"
    ).fit_predict(graph)
    return labels


def first_sis_sets(columns: dict[str, list], model: str) -> list[tuple[int, int, list[int]]]:
    """``(input id, target, features)`` of every input where ``model`` found a non-empty SIS."""
    out = []
    for i, target, status, sis in zip(
        columns["id"], columns["target"], columns[f"{model}_status"], columns[f"{model}_sis"], strict=True
    ):
        if status == "found" and sis and sis[0]:
            out.append((int(i), int(target), list(sis[0])))
    return out


def cluster_sis(
    columns: dict[str, list], models: tuple[str, ...], num_features: int, options: ClusterOptions
) -> ClusterResult:
    """Cluster the first SIS of ``models`` jointly, per target class (see the module docstring)."""
    import time

    started = time.perf_counter()
    points: list[tuple[str, int, int, list[int]]] = [
        (m, i, t, f) for m in models for i, t, f in first_sis_sets(columns, m)
    ]
    assignment: dict[str, dict[int, tuple[int, int] | None]] = {m: {} for m in models}
    clusters: list[Cluster] = []
    for target in sorted({p[2] for p in points}):
        group = [p for p in points if p[2] == target]
        sets = np.zeros((len(group), num_features), dtype=bool)
        for row, (_, _, _, feats) in enumerate(group):
            sets[row, feats] = True
        labels = dbscan(sets, options)
        for (m, i, _, _), lab in zip(group, labels, strict=True):
            assignment[m][i] = None if lab < 0 else (target, int(lab))
        for lab in sorted(set(labels.tolist()) - {-1}):
            rows = np.flatnonzero(labels == lab)
            members: dict[str, list[int]] = {m: [] for m in models}
            for r in rows:
                members[group[r][0]].append(group[r][1])
            c = Cluster(target, int(lab), members, sets[rows].mean(axis=0))
            nd, npr = c.count("dense"), c.count("pruned")
            if nd >= options.min_samples and npr < options.lost_ratio * nd:
                c.kind = "lost"
            elif npr >= options.min_samples and nd < options.lost_ratio * npr:
                c.kind = "gained"
            clusters.append(c)
    return ClusterResult(options, models, clusters, assignment, time.perf_counter() - started)


def cluster_agreement(result: ClusterResult, other: str) -> dict[int, float | None]:
    """Per input: 1.0 when the dense and ``other`` first SIS fall in the same cluster, 0.0 when they
    do not, None when either has no SIS (noise counts as a cluster of its own: it agrees with nothing)."""
    dense = result.assignment.get("dense", {})
    theirs = result.assignment.get(other, {})
    out: dict[int, float | None] = {}
    for i in dense.keys() | theirs.keys():
        if i not in dense or i not in theirs:
            out[i] = None
        else:
            a, b = dense[i], theirs[i]
            out[i] = 1.0 if a is not None and a == b else 0.0
    return out


def agreement_signal(
    result: ClusterResult, columns: dict[str, list], *, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Does per-input cluster agreement carry signal on this audit? Its disagreement rate for the
    pruned model and for the control on the same inputs, the paired excess with a bootstrap 95 %
    interval, and its correlation with ``sis_iou_distance`` (close to 1: it adds little to it)."""
    out: dict[str, Any] = {}
    if "control" not in result.models or "pruned" not in result.models:
        return out
    pa, ca = cluster_agreement(result, "pruned"), cluster_agreement(result, "control")
    ids = sorted(i for i in pa.keys() & ca.keys() if pa[i] is not None and ca[i] is not None)
    if len(ids) < 2:
        return {"inputs": len(ids)}
    p = 1.0 - np.array([pa[i] for i in ids])
    c = 1.0 - np.array([ca[i] for i in ids])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ids), size=(resamples, len(ids)))
    diffs = (p[idx] - c[idx]).mean(axis=1)
    pos = {int(i): k for k, i in enumerate(columns["id"])}
    iou = np.array([columns["pruned_sis_iou_distance"][pos[i]] for i in ids], dtype=object)
    ok = np.array([v is not None for v in iou])
    corr = None
    if ok.sum() > 2 and np.std(p[ok]) > 0 and np.std(iou[ok].astype(float)) > 0:
        corr = float(np.corrcoef(p[ok], iou[ok].astype(float))[0, 1])
    lo, hi = (float(v) for v in np.quantile(diffs, [0.025, 0.975]))
    out.update(
        inputs=len(ids),
        pruned_disagreement=float(p.mean()),
        control_disagreement=float(c.mean()),
        excess=float(p.mean() - c.mean()),
        excess_ci95=[lo, hi],
        excess_excludes_zero=bool(lo > 0 or hi < 0),
        correlation_with_sis_iou_distance=corr,
    )
    return out


def summary_of(result: ClusterResult) -> dict[str, Any]:
    """Counts per kind and model (for the report and the JSON)."""
    kinds = Counter(c.kind for c in result.clusters)
    noise = {m: sum(1 for v in a.values() if v is None) for m, a in result.assignment.items()}
    explained = {m: len(a) for m, a in result.assignment.items()}
    return {"clusters": len(result.clusters), "kinds": dict(kinds), "noise": noise, "sis": explained}
