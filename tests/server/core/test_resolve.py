"""Explain requests parsed once (ExplainOptions checks itself) and resolved once against a pair (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sisguard.server.core.resolve import ExplainOptions, resolve
from sisguard.server.errors import InvalidArgument

BAD_OPTIONS = [
    (dict(threshold=math.nan), "threshold must be a finite number"),
    (dict(baseline_constant=math.inf), "baseline_constant must be a finite number"),
    (dict(max_sis=-1), "must not be negative"),
    (dict(max_evaluations=-5), "must not be negative"),
    (dict(batch_k=-2), "must not be negative"),
    (dict(mode="batched", batch_k=0), "mode BATCHED needs batch_k >= 1"),
    (dict(mode="greedy"), "is not EXACT or BATCHED"),
    (dict(variants="all"), "variants must be dense, pruned or both, got all"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS])
def test_options_refuse_what_no_pair_could_take(fields: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ExplainOptions(**fields)


def test_exact_mode_ignores_batch_k() -> None:
    assert ExplainOptions(batch_k=7) == ExplainOptions()  # one feature a step: the same request (and cache key)
    assert ExplainOptions(mode="batched", batch_k=7).batch_k == 7


def test_defaults_come_from_the_pair_and_caps_from_the_limits(build, make_rows) -> None:
    dp = build(explain={"max_evaluations": 10**9}, limits={"max_evaluations": 5000})
    pair = dp.pairs["mini"]
    r = resolve(pair, make_rows(1), ExplainOptions(), dp.limits)
    assert r.x.shape == (1, 8, 8)
    assert r.num_features == 64 and r.groups.shape == (1, 8, 8)
    assert r.explained == ("dense", "pruned")
    assert r.threshold_relative and r.tau(0.8) == pytest.approx(0.76)
    assert r.max_evaluations == 5000  # the pair's default, capped
    assert np.all(r.baseline == 0)
    params = r.params(r.tau(0.8))
    assert params.threshold == pytest.approx(0.76) and params.chunk_size == 8 and params.max_sis == 1


def test_request_values_override_the_pair(build, make_rows) -> None:
    dp = build()
    pair = dp.pairs["mini"]
    opts = ExplainOptions(
        threshold=0.3, features="patch", patch=(4, 4), baseline="constant", baseline_constant=0.5,
        variants="pruned", max_sis=3, mode="batched", batch_k=2,
    )
    r = resolve(pair, make_rows(1)[0], opts, dp.limits)  # one input without the batch axis is taken too
    assert not r.threshold_relative and r.tau(0.9) == pytest.approx(0.3)
    assert r.num_features == 4 and r.explained == ("pruned",)
    assert np.all(r.baseline == 0.5) and r.max_sis == 3 and r.batch_k == 2


REFUSED = [
    (dict(max_sis=1000), "max_sis must be between 1 and 64"),
    (dict(target=10), "target 10 is out of range: pair mini has 10 outputs"),
    (dict(threshold=1.5), r"threshold tau 1.5 is outside \[0, 1\]"),
    (dict(threshold=0.0, threshold_relative=True), r"relative threshold r .* is outside \(0, 1\]"),
    (dict(features="explicit"), "features=explicit needs a group_map"),
    (dict(features="patch", patch=(9, 9)), "patch 9x9 is larger than the input's 8x8 pixels"),
    (dict(baseline="mean"), "no mean baseline configured"),
    (dict(baseline="tensor"), "needs baseline_tensor"),
]


@pytest.mark.parametrize(("fields", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_what_does_not_fit_the_pair_is_refused_before_any_model_runs(build, make_rows, fields, message) -> None:
    dp = build()  # not started: resolving needs no model
    with pytest.raises(InvalidArgument, match=message):
        resolve(dp.pairs["mini"], make_rows(1), ExplainOptions(**fields), dp.limits)


def test_the_input_must_be_one_input_of_the_pair(build, make_rows) -> None:
    dp = build()
    with pytest.raises(InvalidArgument, match=r"expected one input \[1, 8, 8\]"):
        resolve(dp.pairs["mini"], make_rows(2), ExplainOptions(), dp.limits)
    bad = make_rows(1)
    bad[0, 0, 3, 3] = np.nan
    with pytest.raises(InvalidArgument, match="NaN or Inf"):
        resolve(dp.pairs["mini"], bad, ExplainOptions(), dp.limits)
