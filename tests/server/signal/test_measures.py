"""The per-input divergence measures, on hand-made SIS results and output distributions."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.server.signal.measures import (
    explanation_measures,
    measure_names,
    probe_measures,
    resolve_margins,
    tv_distance,
)
from sisguard.sis.backselect import BackSelectTrace, SISResult, SubsetResult


def result(status: str, sis: tuple[int, ...] = (), order: tuple[int, ...] = (), scores: tuple[float, ...] = ()):
    return SISResult(
        status=status,  # type: ignore[arg-type]
        collection=(SubsetResult(sis, 0.95),) if sis else (),
        full_score=0.99,
        baseline_score=0.1,
        backselect=(BackSelectTrace(order, scores),) if order else (),
        evaluations=10,
        seconds=0.0,
    )


DENSE = result("found", (3, 2), order=(0, 1, 2, 3), scores=(0.99, 0.97, 0.95, 0.1))


@pytest.mark.parametrize(
    ("other", "on_dense_sis", "on_other_sis", "path", "expected"),
    [
        # same rationale: nothing diverges
        (result("found", (3, 2), (0, 1, 2, 3)), 0.95, 0.95, [0.99, 0.97, 0.95, 0.1],
         {"cross_insufficiency": 0.0, "dense_sis_shortfall": -0.05, "reverse_sis_shortfall": -0.05,
          "sis_iou_distance": 0.0, "deletion_gap": 0.0, "rank_distance": 0.0}),
        # the dense SIS leaves the other model at 0.5 < tau: insufficient, shortfall 0.4
        (result("found", (0,), (3, 2, 1, 0)), 0.5, 0.3, [0.9, 0.7, 0.5, 0.1],
         {"cross_insufficiency": 1.0, "dense_sis_shortfall": 0.4, "reverse_sis_shortfall": 0.6,
          "sis_iou_distance": 1.0, "deletion_gap": (0.09 + 0.27 + 0.45 + 0.0) / 4, "rank_distance": 1.0}),
        # other not confident: only the measures needing the dense SIS remain
        (result("not_confident"), 0.2, None, None, {"cross_insufficiency": 1.0, "dense_sis_shortfall": 0.7}),
    ],
)
def test_explanation_measures_table(other, on_dense_sis, on_other_sis, path, expected) -> None:
    got = explanation_measures(
        DENSE, other, threshold=0.9, other_on_dense_sis=on_dense_sis, dense_on_other_sis=on_other_sis,
        other_on_dense_path=None if path is None else np.array(path),
    )
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k


@pytest.mark.parametrize("status", ["not_confident", "baseline_sufficient"])
def test_a_degenerate_dense_explanation_yields_no_measure(status: str) -> None:
    """Degenerate explanations are never counted as agreement (nor as divergence)."""
    got = explanation_measures(
        result(status), DENSE, threshold=0.9, other_on_dense_sis=0.95, dense_on_other_sis=0.95,
        other_on_dense_path=np.ones(4),
    )
    assert got == {}


def test_tv_distance() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert tv_distance(p, q).tolist() == [1.0, 0.0]


def test_probe_measures_instability_is_against_the_model_s_own_clean_decision() -> None:
    clean = {"dense": np.array([[0.9, 0.1]]), "pruned": np.array([[0.8, 0.2]]), "control": np.array([[0.2, 0.8]])}
    shifted = {"blur-1": {
        "dense": np.array([[0.9, 0.1], [0.4, 0.6]]),     # flips once of two
        "pruned": np.array([[0.4, 0.6], [0.4, 0.6]]),    # flips twice
        "control": np.array([[0.2, 0.8], [0.3, 0.7]]),   # never flips (from its own class 1)
    }}
    m = probe_measures(clean, shifted, ["pruned", "control"])
    assert m["instability/blur-1"] == {"dense": 0.5, "pruned": 1.0, "control": 0.0}
    assert m["disagreement/blur-1"] == {"pruned": 0.5, "control": 0.5}
    assert m["top1_disagreement"] == {"pruned": 0.0, "control": 1.0}
    assert m["output_tv"]["pruned"] == pytest.approx(0.1)
    assert m["tv/blur-1"]["pruned"] == pytest.approx((0.5 + 0.0) / 2)


def test_margins_expand_wildcards_and_refuse_unknown_measures() -> None:
    known = measure_names(["blur-1", "brightness-0.3"])
    got = resolve_margins({"instability/*": 0.01, "instability/blur-1": 0.05, "output_tv": 0.02}, known)
    assert got == {"instability/blur-1": 0.05, "instability/brightness-0.3": 0.01, "output_tv": 0.02}
    with pytest.raises(KeyError, match="unknown measure 'iou'"):
        resolve_margins({"iou": 0.1}, known)
    with pytest.raises(KeyError, match="unknown family"):
        resolve_margins({"stability/*": 0.1}, known)
