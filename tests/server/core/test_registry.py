"""The pair registry: readiness, lookups by pair and by Open Inference Protocol name, explain files at start-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sisguard.server.config import ConfigError
from sisguard.server.core.resolve import ExplainOptions
from sisguard.server.errors import NotFound, Unavailable
from sisguard.server.pairs import infer_name, split_infer_name


def test_oip_names_are_made_and_taken_apart_in_one_place() -> None:
    assert infer_name("a.b", "pruned") == "a.b.pruned"
    assert split_infer_name(infer_name("a.b", "pruned")) == ("a.b", "pruned")
    assert split_infer_name("mini") is None
    assert split_infer_name(".dense") is None
    assert split_infer_name("mini.all") is None


async def test_pairs_are_served_only_between_start_and_close(build) -> None:
    dp = build()
    registry = dp.registry
    with pytest.raises(Unavailable, match="not ready"):
        registry.get("mini")
    registry.start()
    try:
        assert registry.get("mini").name == "mini"
        with pytest.raises(NotFound, match="unknown pair 'nope'; available: mini"):
            registry.get("nope")
    finally:
        await registry.close()
    with pytest.raises(Unavailable):
        registry.get("mini")


def test_models_by_oip_name(build) -> None:
    registry = build().registry
    pair, variant = registry.by_infer_name("mini.pruned")  # metadata needs no readiness
    assert (pair.name, variant) == ("mini", "pruned")
    for name in ("mini.control", "nope.dense", "mini", ""):  # no control configured
        with pytest.raises(NotFound, match=r"available: mini\.dense, mini\.pruned"):
            registry.by_infer_name(name)


async def test_the_group_map_file_is_read_once_at_start_up(build, group_map_file: Path, make_rows) -> None:
    quadrants = np.load(group_map_file)
    dp = build(explain={"features": "explicit", "group_map_file": str(group_map_file)})
    group_map_file.unlink()  # requests never read it again
    dp.start()
    try:
        outcome = await dp.explain("mini", make_rows(1), ExplainOptions(), None)
    finally:
        await dp.close()
    assert outcome.num_features == 4
    assert np.array_equal(outcome.groups, quadrants)


def test_an_explain_file_that_does_not_fit_stops_the_start_up(build, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 3), np.int32))
    with pytest.raises(ConfigError, match=r"explain\.group_map_file .* does not fit"):
        build(explain={"group_map_file": str(wrong)})
    with pytest.raises(ConfigError, match=r"cannot read explain\.mean_file"):
        build(explain={"mean_file": str(tmp_path / "missing.npy")})
