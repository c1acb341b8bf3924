"""The score an explanation step feeds: the target class's probability, bit for bit what
``to_probabilities(raw, kind)[:, target]`` gives, so choices and ties are unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.server.probabilities import target_probability, to_probabilities


def _logits(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, classes = int(rng.integers(1, 70)), int(rng.integers(1, 12))
    raw = (rng.normal(size=(rows, classes)) * rng.choice([0.1, 3.0, 40.0, 400.0])).astype(np.float32)
    raw[rng.random(raw.shape) < 0.05] = rng.choice([np.inf, -np.inf, np.nan, 1e30, -1e30])
    if rows > 1:
        raw[-1] = raw[0]  # equal rows: equal scores (ties stay ties)
    return raw


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_target_probability_is_the_column_of_to_probabilities(seed: int, kind: str) -> None:
    raw = _logits(seed)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN rows, as in to_probabilities
        check(raw, kind)


def check(raw: np.ndarray, kind: str) -> None:
    for target in range(raw.shape[1]):
        want = to_probabilities(raw, kind)[:, target].astype(np.float64)
        got = target_probability(raw, kind, target)
        assert got.dtype == np.float64 and got.shape == (raw.shape[0],)
        np.testing.assert_array_equal(got, want)  # NaN where NaN, otherwise identical bits
        assert np.array_equal(got.view(np.int64)[~np.isnan(got)], want.view(np.int64)[~np.isnan(want)])
