"""Sufficient input subsets (SIS; Carter et al., AISTATS 2019): BackSelect, FindSIS, collections.

Transport-neutral and model-free: the engine asks an async score function for the target-class
score of batches of masked inputs and never sees a model. Pipeline: validate → BackSelect one
round → FindSIS on its trace → mask that SIS and repeat until ``max_sis`` subsets are found or the
rest of the input is no longer sufficient.

Evaluation accounting (``SISResult.evaluations``, the budget ``max_evaluations``) counts every row
the score function is asked for:

* 2 rows for ``f(x)`` and ``f(baseline)``;
* 1 row per later round for the input with every SIS so far masked (the sufficiency check);
* per BackSelect step, one row per remaining feature (exact mode: ``d(d+1)/2`` per round);
* batched mode only: one extra row per step that removes more than one feature (the input with
  all of them removed, so the last removal of the step records an exact score), and one row when
  FindSIS settles on a recorded score that was not exact (to report the SIS's true score).

Before a round starts, its whole BackSelect cost (known in advance) is checked against the budget,
so a round that cannot finish is never started.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from sisguard.sis.errors import BudgetExceeded, InvalidInput, ScoringError
from sisguard.sis.features import validate_groups

__all__ = [
    "BackSelectTrace",
    "ProgressEvent",
    "SISParams",
    "SISResult",
    "SISStatus",
    "ScoreFn",
    "SubsetResult",
    "backselect_cost",
    "find_sis",
    "gather_or_cancel",
]

ScoreFn = Callable[[np.ndarray], Awaitable[np.ndarray]]
"""``await score(batch)``: ``batch`` is ``(n, *input_shape)`` in the input's dtype; the result is
``(n,)`` float scores of the target class."""

SISStatus = Literal["found", "not_confident", "baseline_sufficient", "partial"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SISParams:
    """Options of one SIS run; invalid values raise :class:`InvalidInput`.

    Attributes:
        threshold: absolute score ``τ`` a subset must reach to be sufficient.
        max_sis: how many disjoint SIS to collect (at least 1).
        batch_k: features removed per BackSelect step; 1 is exact, more is "batched" mode.
        max_evaluations: budget of score rows per run; ``None`` means unlimited.
        allow_partial: past the budget, return what was found (status ``partial``) instead of
            raising :class:`BudgetExceeded`.
        chunk_size: most rows in one call to the score function.
        max_inflight_chunks: most chunks of one step awaited at once (memory stays
            ``O(max_inflight_chunks * chunk_size * input size)``).
    """

    threshold: float
    max_sis: int = 1
    batch_k: int = 1
    max_evaluations: int | None = None
    allow_partial: bool = False
    chunk_size: int = 64
    max_inflight_chunks: int = 8

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold):
            raise InvalidInput(f"threshold must be a finite number, got {self.threshold}")
        for name, value in (
            ("max_sis", self.max_sis),
            ("batch_k", self.batch_k),
            ("chunk_size", self.chunk_size),
            ("max_inflight_chunks", self.max_inflight_chunks),
        ):
            if int(value) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {value}")
        if self.max_evaluations is not None and int(self.max_evaluations) < 0:
            raise InvalidInput(f"max_evaluations must be non-negative or unset, got {self.max_evaluations}")


@dataclass(frozen=True)
class SubsetResult:
    """One SIS: ``features`` most important first; ``score`` is f with only these present."""

    features: tuple[int, ...]
    score: float


@dataclass(frozen=True)
class BackSelectTrace:
    """One BackSelect round: features in removal order (first removed first), score after each."""

    order: tuple[int, ...]
    scores: tuple[float, ...]


@dataclass(frozen=True)
class SISResult:
    """Outcome of :func:`find_sis`.

    ``full_score`` and ``baseline_score`` are NaN only when the budget did not cover even those two
    rows (status ``partial``). ``backselect`` holds one trace per SIS in ``collection`` (none for
    ``not_confident`` and ``baseline_sufficient``).
    """

    status: SISStatus
    collection: tuple[SubsetResult, ...]
    full_score: float
    baseline_score: float
    backselect: tuple[BackSelectTrace, ...]
    evaluations: int
    seconds: float


@dataclass(frozen=True)
class ProgressEvent:
    """Reported after each BackSelect step; ``round`` and ``step`` count from 0."""

    round: int
    step: int
    features_left: int
    evaluations: int


class _BudgetExceeded(Exception):
    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


def backselect_cost(num_features: int, batch_k: int = 1) -> int:
    """Score rows one BackSelect round over ``num_features`` features costs.

    >>> backselect_cost(4), backselect_cost(4, batch_k=2)
    (10, 8)
    """
    left, cost = int(num_features), 0
    while left > 0:
        removed = min(batch_k, left)
        cost += left + (1 if removed > 1 else 0)
        left -= removed
    return cost


async def gather_or_cancel(coros: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """``asyncio.gather`` that cancels the siblings when one fails (the failure propagates as is)."""
    if len(coros) == 1:
        return [await coros[0]]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise


class _Masker:
    """Builds masked copies of a flat input with precomputed per-feature element indices."""

    def __init__(self, groups: np.ndarray, baseline_flat: np.ndarray, d: int) -> None:
        flat = groups.ravel()
        self._order = np.argsort(flat, kind="stable")
        self._sizes = np.bincount(flat, minlength=d)
        self._starts = np.concatenate(([0], np.cumsum(self._sizes)[:-1]))
        self._base = baseline_flat

    def indices(self, features: np.ndarray) -> np.ndarray:
        """Flat element indices of all ``features``, concatenated feature by feature."""
        lens = self._sizes[features]
        ends = np.cumsum(lens)
        offsets = np.repeat(self._starts[features] - (ends - lens), lens) + np.arange(int(ends[-1]) if lens.size else 0)
        return self._order[offsets]

    def mask(self, state: np.ndarray, features: np.ndarray) -> None:
        """Set ``features`` of ``state`` to the baseline, in place."""
        idx = self.indices(features)
        state[idx] = self._base[idx]

    def rows(self, state: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``(len(features), n)``: row ``i`` is ``state`` with ``features[i]`` masked."""
        out = np.repeat(state[None, :], features.size, axis=0)
        cols = self.indices(features)
        out[np.repeat(np.arange(features.size), self._sizes[features]), cols] = self._base[cols]
        return out


class _Scorer:
    """Calls the score function in chunks and keeps the evaluation count and budget."""

    def __init__(self, score: ScoreFn, shape: tuple[int, ...], masker: _Masker, params: SISParams) -> None:
        self._score = score
        self._shape = shape
        self._masker = masker
        self._chunk = int(params.chunk_size)
        self._inflight = int(params.max_inflight_chunks)
        self._budget = params.max_evaluations
        self.evaluations = 0

    def require(self, n: int) -> None:
        """Raise ``_BudgetExceeded`` unless ``n`` more rows fit in the budget."""
        if self._budget is not None and self.evaluations + n > self._budget:
            raise _BudgetExceeded(self.evaluations + n)

    async def _call(self, rows: np.ndarray) -> np.ndarray:
        n = rows.shape[0]
        out = np.asarray(await self._score(rows.reshape((n, *self._shape))), dtype=np.float64)
        if out.shape != (n,):
            _log.error("score function returned shape %s for %d rows, expected (%d,)", out.shape, n, n)
            raise ScoringError("scoring failed: the model returned a malformed result")
        return out

    async def inputs(self, rows: np.ndarray) -> np.ndarray:
        """Scores of explicit flat inputs ``(m, n)`` (f(x), f(baseline), check and extra rows), chunked."""
        self.require(rows.shape[0])
        self.evaluations += rows.shape[0]
        parts = [rows[i : i + self._chunk] for i in range(0, rows.shape[0], self._chunk)]
        return np.concatenate(await gather_or_cancel([self._call(p) for p in parts]))

    async def masked(self, state: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Scores of ``state`` with each of ``features`` masked in turn, chunk by chunk."""
        self.require(features.size)
        self.evaluations += features.size
        gate = asyncio.Semaphore(self._inflight)

        async def chunk(feats: np.ndarray) -> np.ndarray:
            async with gate:  # rows are built only once the chunk may run: bounded memory
                return await self._call(self._masker.rows(state, feats))

        parts = [features[i : i + self._chunk] for i in range(0, features.size, self._chunk)]
        return np.concatenate(await gather_or_cancel([chunk(p) for p in parts]))


def _validate(x: np.ndarray, baseline: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    if x.size == 0:
        raise InvalidInput(f"input is empty (shape {list(x.shape)})")
    if baseline.shape != x.shape:
        raise InvalidInput(f"baseline has shape {list(baseline.shape)}, expected the input shape {list(x.shape)}")
    d = validate_groups(groups, x.shape)
    return np.ascontiguousarray(groups, dtype=np.int64), baseline.astype(x.dtype, copy=False), d


async def find_sis(
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    score: ScoreFn,
    params: SISParams,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> SISResult:
    """Find a collection of disjoint sufficient input subsets of ``x``.

    Args:
        x: one input (no batch axis).
        baseline: values of masked elements, the shape of ``x`` (cast to its dtype).
        groups: group map of ``x``'s shape (see :mod:`.features`); feature ``g`` is the elements
            where ``groups == g``.
        score: ``await score(batch)`` → ``(n,)`` target-class scores of ``(n, *x.shape)`` inputs.
        params: threshold, collection size, mode, budget and chunking.
        progress: called after every BackSelect step.

    Returns:
        status ``not_confident`` when ``f(x) < τ`` (no SIS); ``baseline_sufficient`` when
        ``f(baseline) ≥ τ`` (one empty SIS); ``found``; or ``partial`` when the budget ran out with
        ``allow_partial`` (the SIS of the completed rounds).

    Raises:
        InvalidInput: shapes or the group map do not fit.
        BudgetExceeded: the budget ran out and ``allow_partial`` is false.

    Example (score = L2 norm, zero baseline, one feature per element):

    >>> import asyncio
    >>> from sisguard.sis import element_groups
    >>> async def l2(batch):
    ...     return np.linalg.norm(batch.reshape(len(batch), -1), axis=1)
    >>> x = np.array([0.9, 0.9, 10.0, 5.0])
    >>> params = SISParams(threshold=1.0, max_sis=3)
    >>> result = asyncio.run(find_sis(x, np.zeros_like(x), element_groups(x.shape), l2, params))
    >>> result.status, [s.features for s in result.collection]
    ('found', [(2,), (3,), (1, 0)])
    >>> result.evaluations  # 2 + 10 + (1 + 6) + (1 + 3)
    23
    """
    started = time.monotonic()
    xa = np.asarray(x)
    groups_i, base, d = _validate(xa, np.asarray(baseline), np.asarray(groups))
    x_flat = xa.ravel().copy()
    base_flat = base.ravel().copy()
    masker = _Masker(groups_i, base_flat, d)
    scorer = _Scorer(score, xa.shape, masker, params)
    tau = float(params.threshold)

    collection: list[SubsetResult] = []
    traces: list[BackSelectTrace] = []
    full_score = baseline_score = math.nan
    status: SISStatus
    try:
        full_score, baseline_score = (float(v) for v in await scorer.inputs(np.stack([x_flat, base_flat])))
        if not full_score >= tau:
            status = "not_confident"
        elif baseline_score >= tau:
            status = "baseline_sufficient"
            collection.append(SubsetResult(features=(), score=baseline_score))
        else:
            status = "found"
            await _collect(x_flat, full_score, d, masker, scorer, params, progress, collection, traces)
    except _BudgetExceeded as exc:
        if not params.allow_partial:
            raise BudgetExceeded(
                f"the explanation needs at least {exc.needed} model evaluations, "
                f"the evaluation budget allows {params.max_evaluations}",
                needed=exc.needed,
                budget=params.max_evaluations,
            ) from None
        status = "partial"
    return SISResult(
        status=status,
        collection=tuple(collection),
        full_score=full_score,
        baseline_score=baseline_score,
        backselect=tuple(traces),
        evaluations=scorer.evaluations,
        seconds=time.monotonic() - started,
    )


async def _collect(
    x_flat: np.ndarray,
    full_score: float,
    d: int,
    masker: _Masker,
    scorer: _Scorer,
    params: SISParams,
    progress: Callable[[ProgressEvent], None] | None,
    collection: list[SubsetResult],
    traces: list[BackSelectTrace],
) -> None:
    """SIS rounds; appends each completed round to ``collection`` and ``traces``."""
    tau = float(params.threshold)
    current = x_flat.copy()  # x with every SIS found so far masked
    remaining = np.arange(d, dtype=np.int64)
    start_score = full_score
    for round_ in range(params.max_sis):
        if remaining.size == 0:
            return
        if round_ > 0:
            start_score = float((await scorer.inputs(current[None, :].copy()))[0])
            if not start_score >= tau:
                return
        scorer.require(backselect_cost(remaining.size, params.batch_k))
        order, scores, exact = await _backselect(current, remaining, round_, masker, scorer, params, progress)
        k = _find_k(scores, tau)
        sis = order[k:][::-1]
        if k == 0:
            subset_score = start_score
        elif exact[k - 1]:
            subset_score = scores[k - 1]
        else:  # batched mode: the recorded score was a single-removal estimate
            subset = current.copy()
            masker.mask(subset, np.asarray(order[:k], dtype=np.int64))
            subset_score = float((await scorer.inputs(subset[None, :]))[0])
        collection.append(SubsetResult(features=tuple(sis), score=subset_score))
        traces.append(BackSelectTrace(order=tuple(order), scores=tuple(scores)))
        sis_arr = np.asarray(sis, dtype=np.int64)
        masker.mask(current, sis_arr)
        remaining = np.setdiff1d(remaining, sis_arr, assume_unique=True)


def _find_k(scores: list[float], tau: float) -> int:
    """Largest ``k < m`` with ``s_k ≥ τ``; ``s_0``, the round's start score, is ≥ τ (checked before).

    ``k = m`` (everything masked) is excluded: that input is the baseline, known not sufficient,
    so float noise in its score can never produce an empty SIS.
    """
    k = 0
    for j in range(1, len(scores)):
        if scores[j - 1] >= tau:
            k = j
    return k


async def _backselect(
    start: np.ndarray,
    candidates: np.ndarray,
    round_: int,
    masker: _Masker,
    scorer: _Scorer,
    params: SISParams,
    progress: Callable[[ProgressEvent], None] | None,
) -> tuple[list[int], list[float], list[bool]]:
    """Remove every candidate feature, most dispensable first.

    Returns the removal order, the recorded score after each removal, and whether each recorded
    score is exact (f of the input with exactly the features so far removed). In batched mode the
    j-th of the ``k`` features removed in one step records the score of removing it alone, except
    the last, which records the exact score of the input with all ``k`` removed (one extra row).
    """
    state = start.copy()
    rem = candidates.copy()  # ascending feature ids: argmax/stable sort break ties by lowest id
    order: list[int] = []
    scores: list[float] = []
    exact: list[bool] = []
    step = 0
    while rem.size:
        s = await scorer.masked(state, rem)
        key = np.where(np.isnan(s), -np.inf, s)
        if params.batch_k == 1 or rem.size == 1:
            picks = np.array([int(np.argmax(key))])
        else:
            picks = np.argsort(-key, kind="stable")[: params.batch_k]
        chosen = rem[picks]
        masker.mask(state, chosen)
        order.extend(int(f) for f in chosen)
        scores.extend(float(v) for v in s[picks[:-1]])
        exact.extend([False] * (picks.size - 1))
        if picks.size > 1:
            scores.append(float((await scorer.inputs(state[None, :].copy()))[0]))
        else:
            scores.append(float(s[picks[0]]))
        exact.append(True)
        rem = np.delete(rem, picks)
        if progress is not None:
            progress(
                ProgressEvent(round=round_, step=step, features_left=int(rem.size), evaluations=scorer.evaluations)
            )
        step += 1
    return order, scores, exact
