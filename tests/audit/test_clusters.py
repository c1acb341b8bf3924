"""SIS clusters: the radius graph, joint DBSCAN per class, lost/gained clusters, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sisguard.audit.clusters import ClusterOptions, cluster_agreement, cluster_sis, radius_graph
from sisguard.audit.report import write_report
from sisguard.audit.runner import run_audit


def test_radius_graph_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    sets = rng.random((50, 12)) < 0.3
    sets[:, 0] = True  # no empty set
    brute = np.array([[1 - np.sum(a & b) / np.sum(a | b) for b in sets] for a in sets])
    graph = radius_graph(sets, 0.6, block_rows=7).tocoo()
    got = {(int(i), int(j)): float(d) for i, j, d in zip(graph.row, graph.col, graph.data, strict=True)}
    want = {(i, j) for i in range(50) for j in range(50) if brute[i, j] <= 0.6}
    assert set(got) == want
    assert all(d == pytest.approx(brute[i, j], abs=1e-6) for (i, j), d in got.items())
    assert all(got[(i, i)] == 0.0 for i in range(50))  # identical sets are neighbours (explicit zeros)


def _columns(sis: dict[str, list[list[int]]]) -> dict[str, list]:  # type: ignore[type-arg]
    n = len(next(iter(sis.values())))
    cols: dict[str, list] = {"id": list(range(n)), "target": [3] * n}  # type: ignore[type-arg]
    for m, sets in sis.items():
        cols[f"{m}_status"] = ["found"] * n
        cols[f"{m}_sis"] = [[s] for s in sets]
    return cols


def test_a_pattern_the_pruned_model_dropped_is_lost_and_its_replacement_gained() -> None:
    a, b = [1, 2, 3], [7, 8, 9]
    cols = _columns({"dense": [a] * 6, "pruned": [b] * 6, "control": [a] * 5 + [b]})
    result = cluster_sis(cols, ("dense", "pruned", "control"), 16, ClusterOptions(eps=0.3, min_samples=3))
    kinds = {c.kind: c for c in result.clusters}
    assert set(kinds) == {"lost", "gained"}
    assert kinds["lost"].count("dense") == 6 and kinds["lost"].count("control") == 5
    assert kinds["gained"].count("pruned") == 6
    assert kinds["lost"].top_features(3) == [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert set(cluster_agreement(result, "pruned").values()) == {0.0}
    assert list(cluster_agreement(result, "control").values()).count(1.0) == 5


def test_similar_sets_share_a_cluster_and_outliers_are_noise() -> None:
    sets = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 6], [1, 2, 3], [10, 11]]
    cols = _columns({"dense": sets, "pruned": sets})
    result = cluster_sis(cols, ("dense", "pruned"), 16, ClusterOptions(eps=0.5, min_samples=3))
    assert len(result.clusters) == 1 and result.clusters[0].kind == "shared"
    assert result.assignment["dense"][4] is None
    assert cluster_agreement(result, "pruned") == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 0.0}


def test_report_of_a_real_audit(digits_npz: Path, tmp_path: Path, make_options) -> None:  # type: ignore[no-untyped-def]
    run_audit(make_options(digits_npz, tmp_path / "a", workers=1))
    doc = write_report(tmp_path / "a", tmp_path / "r", ClusterOptions(eps=0.6, min_samples=1))
    on_disk = json.loads((tmp_path / "r" / "clusters.json").read_text())
    assert on_disk["summary"] == doc["summary"] and doc["summary"]["clusters"] >= 1
    members = sum(sum(c["counts"].values()) for c in doc["clusters"])
    assert members == sum(doc["summary"]["sis"].values())  # min_samples 1: every SIS is in a cluster
    md = (tmp_path / "r" / "clusters.md").read_text()
    pngs = sorted(p.name for p in (tmp_path / "r").glob("class-*.png"))
    assert pngs and all(f"]({p})" in md for p in pngs)
    assert (tmp_path / "r" / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
