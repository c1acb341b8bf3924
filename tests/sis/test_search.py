"""SISSearch, the resumable state machine behind find_sis, driven by hand.

Whoever drives the search — find_sis chunk by chunk, a server's worker thread slice by slice in
runs shared with other searches — the choices, scores, evaluation counts, budget outcomes and
progress events must be the same.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sisguard.sis import (
    BudgetExceeded,
    ProgressEvent,
    ScoringError,
    SISParams,
    SISSearch,
    element_groups,
    find_sis,
)


def _reference():  # the reference tests' plain implementation and random cases, reused as they are
    name = "sis_reference_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_explain_reference.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_ref = _reference()
N_CASES, assert_matches, batched, random_case, ref_find_sis = (
    _ref.N_CASES,
    _ref.assert_matches,
    _ref.batched,
    _ref.random_case,
    _ref.ref_find_sis,
)


def drive_sliced(search: SISSearch, f, rng: np.random.Generator) -> list[int]:
    """Feed ``search`` by hand, building every request in random slices; returns the slice sizes."""
    slices: list[int] = []
    while (req := search.request) is not None:
        scores, start = [], 0
        while start < req.size:
            stop = start + int(rng.integers(1, req.size + 1))
            rows = req.rows(start, stop)
            assert rows.shape[1:] == search.shape
            scores.extend(f(r) for r in rows)
            slices.append(rows.shape[0])
            start = stop
        search.feed(np.array(scores))
    return slices


@pytest.mark.parametrize("seed", range(0, N_CASES, 3))
def test_sliced_driving_matches_reference(seed: int) -> None:
    x, baseline, groups, f, tau, max_sis, batch_k, _ = random_case(seed)
    search = SISSearch(x, baseline, groups, SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k))
    slices = drive_sliced(search, f, np.random.default_rng(seed))
    assert search.done
    result = search.result()
    assert_matches(result, ref_find_sis(x, baseline, groups, f, tau, max_sis=max_sis, batch_k=batch_k))
    assert sum(slices) == result.evaluations == search.evaluations


@pytest.mark.parametrize("seed", range(1, N_CASES, 5))
def test_rows_built_into_a_reused_buffer_match_reference(seed: int) -> None:
    """``rows(..., out=buf)`` writes exactly ``rows(...)`` into the caller's buffer, slice by slice,
    and one buffer reused for every request drives the search to the reference's result."""
    x, baseline, groups, f, tau, max_sis, batch_k, _ = random_case(seed)
    search = SISSearch(x, baseline, groups, SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k))
    rng = np.random.default_rng(seed)
    buf = np.empty((search.num_features + 2, *search.shape), dtype=search.dtype)
    while (req := search.request) is not None:
        scores, start = [], 0
        while start < req.size:
            stop = start + int(rng.integers(1, req.size + 1))
            want = req.rows(start, stop)
            buf[...] = 7  # stale values from anywhere must be overwritten
            got = req.rows(start, stop, out=buf[: want.shape[0]])
            assert np.shares_memory(got, buf) and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            scores.extend(f(r) for r in got)
            start = stop
        search.feed(np.array(scores))
    assert_matches(search.result(), ref_find_sis(x, baseline, groups, f, tau, max_sis=max_sis, batch_k=batch_k))


@pytest.mark.parametrize("seed", [5, 29, 54, 77, 101, 150])
async def test_same_progress_events_as_find_sis(seed: int) -> None:
    x, baseline, groups, f, tau, max_sis, batch_k, _ = random_case(seed)
    params = SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k, chunk_size=4)
    by_find: list[ProgressEvent] = []
    expected = await find_sis(x, baseline, groups, batched(f), params, by_find.append)
    by_hand: list[ProgressEvent] = []
    search = SISSearch(x, baseline, groups, params, by_hand.append)
    drive_sliced(search, f, np.random.default_rng(seed))
    assert by_hand == by_find
    got = search.result()
    assert (got.status, got.collection, got.backselect, got.evaluations) == (
        expected.status,
        expected.collection,
        expected.backselect,
        expected.evaluations,
    )


def l2(row: np.ndarray) -> float:
    return float(np.linalg.norm(row))


X = np.array([0.9, 0.9, 10.0, 5.0])
PARAMS = dict(threshold=1.0, max_sis=3)


@pytest.mark.parametrize("budget", [0, 1, 2, 11, 12, 18, 19, 22])
async def test_budget_outcomes_match_find_sis(budget: int) -> None:
    """Budgets that stop the search before, inside and after each round, with and without partial."""
    groups = element_groups(X.shape)
    for partial in (False, True):
        params = SISParams(**PARAMS, max_evaluations=budget, allow_partial=partial)  # type: ignore[arg-type]
        search = SISSearch(X, np.zeros_like(X), groups, params)
        drive_sliced(search, l2, np.random.default_rng(budget))
        try:
            expected = await find_sis(X, np.zeros_like(X), groups, batched(l2), params)
        except BudgetExceeded as exc:
            with pytest.raises(BudgetExceeded) as got:
                search.result()
            assert (str(got.value), got.value.needed) == (str(exc), exc.needed)
            continue
        result = search.result()
        assert (result.status, result.collection, result.evaluations) == (
            expected.status,
            expected.collection,
            expected.evaluations,
        )
        assert result.evaluations <= budget


async def test_find_sis_hands_the_whole_search_to_a_driver() -> None:
    """A score function with ``drive`` runs the search itself; find_sis never calls it per step."""

    class Driver:
        def __init__(self) -> None:
            self.driven = 0

        async def __call__(self, batch: np.ndarray) -> np.ndarray:
            raise AssertionError("find_sis called the driver as a score function")

        async def drive(self, search: SISSearch) -> None:
            self.driven += 1
            drive_sliced(search, l2, np.random.default_rng(0))

    driver = Driver()
    result = await find_sis(X, np.zeros_like(X), element_groups(X.shape), driver, SISParams(**PARAMS))  # type: ignore[arg-type]
    assert driver.driven == 1
    assert [s.features for s in result.collection] == [(2,), (3,), (1, 0)]
    assert result.evaluations == 23


def test_malformed_scores_and_misuse_are_refused() -> None:
    search = SISSearch(X, np.zeros_like(X), element_groups(X.shape), SISParams(**PARAMS))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not done"):
        search.result()
    with pytest.raises(ScoringError, match="malformed"):
        search.feed(np.zeros(3))
    search = SISSearch(X, np.zeros_like(X), element_groups(X.shape), SISParams(threshold=100.0))
    search.feed(np.array([1.0, 0.0]))  # f(x) < threshold: done at once
    assert search.done and search.result().status == "not_confident"
    with pytest.raises(RuntimeError, match="done"):
        search.feed(np.zeros(1))


@pytest.mark.parametrize("seed", [0, 7, 31, 54, 100, 222])
async def test_known_full_score_runs_one_row_less_and_counts_the_same(seed: int) -> None:
    x, baseline, groups, f, tau, max_sis, batch_k, _ = random_case(seed)
    params = SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k)
    rows_plain: list[int] = []
    rows_known: list[int] = []
    plain = await find_sis(x, baseline, groups, batched(f, rows_plain), params)
    known = await find_sis(x, baseline, groups, batched(f, rows_known), params, full_score=float(f(x)))
    assert (known.status, known.collection, known.backselect, known.evaluations) == (
        plain.status,
        plain.collection,
        plain.backselect,
        plain.evaluations,
    )
    assert sum(rows_known) == sum(rows_plain) - 1
    with pytest.raises(BudgetExceeded):
        await find_sis(x, baseline, groups, batched(f), SISParams(threshold=tau, max_evaluations=1), full_score=0.0)
