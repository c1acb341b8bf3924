"""find_sis given f(x) by its caller: the same search, the same evaluation count, one row fewer run."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.sis import BudgetExceeded, SISParams, element_groups, find_sis


def l2_counting(rows_seen: list[int]):  # type: ignore[no-untyped-def]
    async def score(batch: np.ndarray) -> np.ndarray:
        rows_seen.append(len(batch))
        return np.linalg.norm(batch.reshape(len(batch), -1), axis=1)

    return score


@pytest.mark.parametrize("seed", range(5))
async def test_a_known_full_score_changes_nothing_but_the_rows_run(seed: int) -> None:
    x = np.random.default_rng(seed).random(12) * 3
    params = SISParams(threshold=0.6 * float(np.linalg.norm(x)), max_sis=3)
    plain, known = [], []
    a = await find_sis(x, np.zeros_like(x), element_groups(x.shape), l2_counting(plain), params)
    b = await find_sis(
        x, np.zeros_like(x), element_groups(x.shape), l2_counting(known), params, full_score=float(np.linalg.norm(x))
    )
    same = (a.status, a.collection, a.backselect, a.evaluations)
    assert same == (b.status, b.collection, b.backselect, b.evaluations)
    assert a.full_score == pytest.approx(b.full_score)
    assert sum(known) == sum(plain) - 1


async def test_the_budget_is_checked_as_before() -> None:
    x = np.array([0.9, 0.9, 10.0, 5.0])
    params = SISParams(threshold=1.0, max_evaluations=1)
    with pytest.raises(BudgetExceeded):
        await find_sis(x, np.zeros_like(x), element_groups(x.shape), l2_counting([]), params, full_score=11.3)
    partial = await find_sis(
        x, np.zeros_like(x), element_groups(x.shape), l2_counting([]),
        SISParams(threshold=1.0, max_evaluations=1, allow_partial=True), full_score=11.3,
    )
    assert partial.status == "partial" and np.isnan(partial.full_score) and partial.evaluations == 0
