"""Evaluation metrics on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.prune.evaluate import ModelEntry, summarise
from sisguard.prune.metrics import error_rate, excess_error, functional_agreement, prune_potential


@pytest.mark.parametrize(
    ("ratios", "errors", "dense_error", "delta", "expected"),
    [
        ([0.3, 0.5, 0.7], [0.02, 0.02, 0.02], 0.02, 0.005, 0.7),     # identical errors → largest ratio
        ([0.3, 0.5, 0.7], [0.021, 0.024, 0.026], 0.02, 0.005, 0.5),  # 0.7 exceeds δ
        ([0.3, 0.5, 0.7], [0.03, 0.03, 0.03], 0.02, 0.005, 0.0),     # none within δ
        ([0.3, 0.5, 0.7], [0.03, 0.021, 0.03], 0.02, 0.005, 0.5),    # largest qualifying, not contiguous
        ([0.9], [0.10], 0.20, 0.0, 0.9),                             # better than dense counts
    ],
)
def test_prune_potential(ratios, errors, dense_error, delta, expected) -> None:
    assert prune_potential(ratios, errors, dense_error, delta) == pytest.approx(expected)


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
