"""The evaluation measures beyond test accuracy, on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.prune.errors import PruneError
from sisguard.prune.evaluate import ModelEntry, summarise
from sisguard.prune.evaluation_measures import (
    error_rate,
    excess_error,
    functional_agreement,
    mean_interval,
    prune_potential,
)


@pytest.mark.parametrize(
    ("ratios", "errors", "dense_error", "delta", "expected"),
    [
        ([0.3, 0.5, 0.7], [0.02, 0.02, 0.02], 0.02, 0.005, 0.7),     # identical errors → largest ratio
        ([0.3, 0.5, 0.7], [0.021, 0.024, 0.026], 0.02, 0.005, 0.5),  # 0.7 exceeds δ
        ([0.3, 0.5, 0.7], [0.03, 0.03, 0.03], 0.02, 0.005, 0.0),     # none within δ
        ([0.3, 0.5, 0.7], [0.03, 0.021, 0.03], 0.02, 0.005, 0.0),    # 0.3 fails: nothing below 0.5 holds
        ([0.9], [0.10], 0.20, 0.0, 0.9),                             # better than dense counts
        # brightness on digits: 0.7–0.9 fail, a collapsed 0.95 model beats the dense one by chance
        ([0.3, 0.5, 0.7, 0.8, 0.9, 0.95], [0.20, 0.203, 0.23, 0.24, 0.26, 0.19], 0.20, 0.005, 0.5),
        ([0.95, 0.3, 0.9, 0.5], [0.19, 0.20, 0.26, 0.203], 0.20, 0.005, 0.5),  # order of the input is irrelevant
        ([0.5, 0.5, 0.7], [0.20, 0.21, 0.20], 0.20, 0.005, 0.0),     # every model at a ratio must qualify
        ([0.3, 0.5], [0.20, 0.208], 0.20, 0.01, 0.5),                # δ widens the tolerance
        ([], [], 0.20, 0.005, 0.0),                                  # no model: no potential
    ],
)
def test_prune_potential_is_monotone(ratios, errors, dense_error, delta, expected) -> None:
    assert prune_potential(ratios, errors, dense_error, delta) == pytest.approx(expected)


def test_prune_potential_refuses_mismatched_or_negative_input() -> None:
    with pytest.raises(PruneError, match="2 ratios for 1 errors"):
        prune_potential([0.3, 0.5], [0.1], 0.1, 0.005)
    with pytest.raises(PruneError, match="delta must be >= 0"):
        prune_potential([0.3], [0.1], 0.1, -0.01)


def test_mean_interval_known_values() -> None:
    one = mean_interval([0.5])
    assert one["mean"] == 0.5 and one["t_low"] is None and one["t_high"] is None and one["n"] == 1
    three = mean_interval([0.5, 0.7, 0.9])
    assert three["mean"] == pytest.approx(0.7) and three["min"] == 0.5 and three["max"] == 0.9
    assert three["std"] == pytest.approx(0.2)
    # t(0.975, 2) = 4.3027: half-width 4.3027 · 0.2 / √3
    assert three["t_high"] - three["mean"] == pytest.approx(4.302653 * 0.2 / np.sqrt(3), rel=1e-5)
    assert mean_interval([0.7, 0.7])["t_low"] == pytest.approx(0.7)
    with pytest.raises(PruneError, match="at least one value"):
        mean_interval([])
    with pytest.raises(PruneError, match="confidence"):
        mean_interval([0.1, 0.2], confidence=1.0)


def test_excess_error_known_values() -> None:
    assert excess_error(0.02, 0.10, 0.02, 0.06) == pytest.approx(0.04)
    assert excess_error(0.05, 0.05, 0.01, 0.01) == 0.0
    assert excess_error(0.02, 0.03, 0.02, 0.05) == pytest.approx(-0.02)


def test_identical_models_give_full_potential_and_zero_excess() -> None:
    shifts = {"clean": 0.02, "gaussian-0.1": 0.05, "blur-0.8": 0.11}
    entries = [ModelEntry("ft-a", "ft", 0.4, "a"), ModelEntry("ft-b", "ft", 0.6, "b"),
               ModelEntry("wt-a", "wt", 0.8, "c")]
    errors = {"dense": dict(shifts), **{e.name: dict(shifts) for e in entries}}
    potential, excess = summarise(errors, entries, "dense", delta=0.5)
    assert potential == {"ft": dict.fromkeys(shifts, 0.6), "wt": dict.fromkeys(shifts, 0.8)}
    assert all(v == 0.0 for per in excess.values() for v in per.values())


def test_functional_agreement_identical_and_opposite() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10)).astype(np.float32)
    same = functional_agreement(logits, logits.copy())
    assert same == {"top1_agreement": 1.0, "softmax_tv": 0.0, "logit_l2_mean": 0.0, "logit_l2_max": 0.0}
    shifted = functional_agreement(logits, logits + 3.0)  # softmax is shift-invariant
    assert shifted["top1_agreement"] == 1.0 and shifted["softmax_tv"] == pytest.approx(0.0, abs=1e-6)
    assert shifted["logit_l2_mean"] == pytest.approx(3.0 * np.sqrt(10), rel=1e-5)
    a = np.array([[10.0, 0.0], [0.0, 10.0]])
    flipped = functional_agreement(a, a[:, ::-1])
    assert flipped["top1_agreement"] == 0.0 and flipped["softmax_tv"] > 0.99


def test_error_rate() -> None:
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert error_rate(logits, np.array([0, 1, 1, 1])) == 0.25
