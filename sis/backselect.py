"""Sufficient input subsets (SIS; Carter et al., AISTATS 2019): BackSelect, FindSIS, collections.

Transport-neutral and model-free: the engine asks for the target-class scores of batches of
masked inputs and never sees a model. Pipeline: validate → BackSelect one round → FindSIS on its
trace → mask that SIS and repeat until ``max_sis`` subsets are found or the rest of the input is no
longer sufficient.

The algorithm is one synchronous, resumable state machine, :class:`SISSearch` (pure numpy: "the
rows of the next step" / "here are their scores"). :func:`find_sis` drives it with an async score
function, chunk by chunk; a :class:`SearchDriver` (a server's per-model step scheduler) drives many
searches at once from a model's worker thread without an event-loop hop per step.

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
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from sisguard.sis.errors import BudgetExceeded, InvalidInput, ScoringError
from sisguard.sis.features import validate_groups

__all__ = [
    "BackSelectTrace",
    "ProgressEvent",
    "SISParams",
    "SISResult",
    "SISSearch",
    "SISStatus",
    "ScoreFn",
    "ScoreRequest",
    "SearchDriver",
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
    """Builds masked copies of a flat input with precomputed per-feature element indices.

    When every feature has the same number of elements (element, pixel and patch groups of inputs
    whose sides the patch divides) the indices are one ``(d, size)`` table and a step's rows are
    built with a single fancy-indexed assignment.
    """

    def __init__(self, groups: np.ndarray, baseline_flat: np.ndarray, d: int) -> None:
        flat = groups.ravel()
        self._order = np.argsort(flat, kind="stable")
        self._sizes = np.bincount(flat, minlength=d)
        self._starts = np.concatenate(([0], np.cumsum(self._sizes)[:-1]))
        self._base = baseline_flat
        size = int(self._sizes[0]) if d else 0
        uniform = d > 0 and size > 0 and bool((self._sizes == size).all())
        #: ``(d, size)`` element indices of each feature, when all features have ``size`` elements
        self._table: np.ndarray | None = self._order.reshape(d, size) if uniform else None
        #: the baseline's values at ``_table`` (what a masked feature's elements become)
        self._base_table: np.ndarray | None = baseline_flat[self._table] if uniform else None
        self._row_ids = np.arange(d)[:, None]
        # Python ints for the per-step single removal (no numpy scalar conversions)
        self._start_of: list[int] = self._starts.tolist()
        self._size_of: list[int] = self._sizes.tolist()

    def indices(self, features: np.ndarray) -> np.ndarray:
        """Flat element indices of all ``features``, concatenated feature by feature."""
        if self._table is not None:
            return self._table[features].ravel()
        lens = self._sizes[features]
        ends = np.cumsum(lens)
        offsets = np.repeat(self._starts[features] - (ends - lens), lens) + np.arange(int(ends[-1]) if lens.size else 0)
        return self._order[offsets]

    def mask(self, state: np.ndarray, features: np.ndarray) -> None:
        """Set ``features`` of ``state`` to the baseline, in place."""
        idx = self.indices(features)
        state[idx] = self._base[idx]

    def mask_one(self, state: np.ndarray, feature: int) -> None:
        """Set one feature of ``state`` to the baseline, in place."""
        start = self._start_of[feature]
        idx = self._order[start : start + self._size_of[feature]]
        state[idx] = self._base[idx]

    def rows(self, state: np.ndarray, features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(len(features), n)``: row ``i`` is ``state`` with ``features[i]`` masked; written into
        ``out`` (C-contiguous, that shape and dtype) when given."""
        n = features.size
        if out is None:
            out = np.empty((n, state.size), dtype=state.dtype)
        out[...] = state
        if self._table is not None:
            out[self._row_ids[:n], self._table[features]] = self._base_table[features]  # type: ignore[index]
            return out
        cols = self.indices(features)
        out[np.repeat(np.arange(n), self._sizes[features]), cols] = self._base[cols]
        return out


def _validate(x: np.ndarray, baseline: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    if x.size == 0:
        raise InvalidInput(f"input is empty (shape {list(x.shape)})")
    if baseline.shape != x.shape:
        raise InvalidInput(f"baseline has shape {list(baseline.shape)}, expected the input shape {list(x.shape)}")
    d = validate_groups(groups, x.shape)
    return np.ascontiguousarray(groups, dtype=np.int64), baseline.astype(x.dtype, copy=False), d


@dataclass(eq=False, slots=True)
class ScoreRequest:
    """The rows a :class:`SISSearch` needs scored next: ``size`` inputs, built on demand.

    Either explicit rows (``f(x)``, ``f(baseline)``, a sufficiency check, a batched step's extra
    row) or one BackSelect step: the search's current input with each remaining feature masked in
    turn. :meth:`rows` builds any slice, so a caller holds ``O(slice × input size)`` whatever ``d``.
    A request is valid until its scores are fed (the search then moves its input on, in place).
    """

    size: int
    shape: tuple[int, ...]
    _explicit: np.ndarray | None = None
    _step: tuple[_Masker, np.ndarray, np.ndarray] | None = None  # masker, current input, features

    @property
    def is_step(self) -> bool:
        """Whether this is a BackSelect step (one row per remaining feature)."""
        return self._step is not None

    def rows(self, start: int = 0, stop: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of the request, shaped ``(n, *input_shape)`` in the input's dtype.

        ``out``: a C-contiguous array of ``stop - start`` rows of the input's size and dtype (any
        shape with that many rows) to build them in instead of a new array; a caller running many
        steps reuses one buffer."""
        stop = self.size if stop is None else min(int(stop), self.size)
        flat_out = None if out is None else out.reshape(stop - start, -1)
        if self._step is not None:
            masker, state, features = self._step
            flat = masker.rows(state, features[start:stop], flat_out)
            if out is not None and out.shape[1:] == self.shape:
                return out  # built in place, already shaped
        elif self._explicit is not None:
            flat = self._explicit[start:stop]
            if flat_out is not None:
                flat_out[...] = flat
                flat = flat_out
        else:
            raise RuntimeError("a score request holds either explicit rows or a BackSelect step")
        return flat.reshape((flat.shape[0], *self.shape))


_Steps = Generator[ScoreRequest, np.ndarray, None]


class SISSearch:
    """FindSIS as a synchronous, resumable state machine: one algorithm for every driver.

    The search never calls a model. It exposes the rows it needs next (:attr:`request`), takes
    their scores (:meth:`feed`) and moves on, until :attr:`done`; then :meth:`result` is the
    :class:`SISResult`. :func:`find_sis` drives it with an async score function; a server can drive
    many searches at once from a model's worker thread, putting the current steps of all of them
    into one model run. Choices, tie-breaking, scores, evaluation accounting, budget checks and
    progress events are the same whoever drives it.

    >>> from sisguard.sis import element_groups
    >>> x = np.array([0.9, 0.9, 10.0, 5.0])
    >>> search = SISSearch(x, np.zeros_like(x), element_groups(x.shape), SISParams(threshold=1.0, max_sis=3))
    >>> while search.request is not None:
    ...     rows = search.request.rows()
    ...     search.feed(np.linalg.norm(rows.reshape(len(rows), -1), axis=1))
    >>> [s.features for s in search.result().collection], search.evaluations
    ([(2,), (3,), (1, 0)], 23)
    """

    def __init__(
        self,
        x: np.ndarray,
        baseline: np.ndarray,
        groups: np.ndarray,
        params: SISParams,
        progress: Callable[[ProgressEvent], None] | None = None,
        *,
        full_score: float | None = None,
    ) -> None:
        self._started = time.monotonic()
        # f(x) when the caller has scored it already: counted as an evaluation as always, not run again
        self._known_full = None if full_score is None else float(full_score)
        xa = np.asarray(x)
        groups_i, base, d = _validate(xa, np.asarray(baseline), np.asarray(groups))
        self.params = params
        self.shape: tuple[int, ...] = tuple(xa.shape)
        self.dtype: np.dtype[Any] = xa.dtype
        """The rows' dtype (the input's)."""
        self.num_features = d
        self.evaluations = 0
        self._x = xa.ravel().copy()
        self._base = base.ravel().copy()
        self._masker = _Masker(groups_i, self._base, d)
        self.progress = progress
        """Called after every BackSelect step, on the thread that feeds; a driver feeding from another
        thread may put a relay here while it drives."""
        self._result: SISResult | None = None
        self._error: BudgetExceeded | None = None
        self._steps: _Steps = self._search()
        self.request: ScoreRequest | None = next(self._steps, None)

    @property
    def done(self) -> bool:
        return self.request is None

    def feed(self, scores: np.ndarray) -> None:
        """Scores of every row of :attr:`request`, in order; advances to the next request."""
        req = self.request
        if req is None:
            raise RuntimeError("the search is done; it needs no more scores")
        out = np.asarray(scores, dtype=np.float64)
        if out.shape != (req.size,):
            _log.error("score function returned shape %s for %d rows, expected (%d,)", out.shape, req.size, req.size)
            raise ScoringError("scoring failed: the model returned a malformed result")
        try:
            self.request = self._steps.send(out)
        except StopIteration:
            self.request = None

    def result(self) -> SISResult:
        """The outcome once :attr:`done`; raises :class:`BudgetExceeded` as :func:`find_sis` does."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError("the search is not done yet")
        return self._result

    # -- the algorithm ------------------------------------------------------------------------

    def _require(self, n: int) -> None:
        """Raise ``_BudgetExceeded`` unless ``n`` more rows fit in the budget."""
        budget = self.params.max_evaluations
        if budget is not None and self.evaluations + n > budget:
            raise _BudgetExceeded(self.evaluations + n)

    def _inputs(self, rows: np.ndarray) -> Generator[ScoreRequest, np.ndarray, np.ndarray]:
        """Scores of explicit flat inputs ``(m, n)``."""
        self._require(rows.shape[0])
        self.evaluations += rows.shape[0]
        return (yield ScoreRequest(int(rows.shape[0]), self.shape, _explicit=rows))

    def _masked(self, state: np.ndarray, features: np.ndarray) -> Generator[ScoreRequest, np.ndarray, np.ndarray]:
        """Scores of ``state`` with each of ``features`` masked in turn."""
        self._require(features.size)
        self.evaluations += features.size
        return (yield ScoreRequest(int(features.size), self.shape, _step=(self._masker, state, features)))

    def _search(self) -> _Steps:
        params, tau = self.params, float(self.params.threshold)
        collection: list[SubsetResult] = []
        traces: list[BackSelectTrace] = []
        full_score = baseline_score = math.nan
        status: SISStatus
        try:
            if self._known_full is None:
                both = yield from self._inputs(np.stack([self._x, self._base]))
                full_score, baseline_score = (float(v) for v in both)
            else:
                self._require(2)  # the same budget check as when both rows are scored here
                self.evaluations += 1
                baseline_score = float((yield from self._inputs(self._base[None]))[0])
                full_score = self._known_full
            if not full_score >= tau:
                status = "not_confident"
            elif baseline_score >= tau:
                status = "baseline_sufficient"
                collection.append(SubsetResult(features=(), score=baseline_score))
            else:
                status = "found"
                yield from self._collect(full_score, collection, traces)
        except _BudgetExceeded as exc:
            if not params.allow_partial:
                self._error = BudgetExceeded(
                    f"the explanation needs at least {exc.needed} model evaluations, "
                    f"the evaluation budget allows {params.max_evaluations}",
                    needed=exc.needed,
                    budget=params.max_evaluations,
                )
                return
            status = "partial"
        self._result = SISResult(
            status=status,
            collection=tuple(collection),
            full_score=full_score,
            baseline_score=baseline_score,
            backselect=tuple(traces),
            evaluations=self.evaluations,
            seconds=time.monotonic() - self._started,
        )

    def _collect(self, full_score: float, collection: list[SubsetResult], traces: list[BackSelectTrace]) -> _Steps:
        """SIS rounds; appends each completed round to ``collection`` and ``traces``."""
        params, tau, masker = self.params, float(self.params.threshold), self._masker
        current = self._x.copy()  # x with every SIS found so far masked
        remaining = np.arange(self.num_features, dtype=np.int64)
        start_score = full_score
        for round_ in range(params.max_sis):
            if remaining.size == 0:
                return
            if round_ > 0:
                start_score = float((yield from self._inputs(current[None, :].copy()))[0])
                if not start_score >= tau:
                    return
            self._require(backselect_cost(remaining.size, params.batch_k))
            order, scores, exact = yield from self._backselect(current, remaining, round_)
            k = _find_k(scores, tau)
            sis = order[k:][::-1]
            if k == 0:
                subset_score = start_score
            elif exact[k - 1]:
                subset_score = scores[k - 1]
            else:  # batched mode: the recorded score was a single-removal estimate
                subset = current.copy()
                masker.mask(subset, np.asarray(order[:k], dtype=np.int64))
                subset_score = float((yield from self._inputs(subset[None, :]))[0])
            collection.append(SubsetResult(features=tuple(sis), score=subset_score))
            traces.append(BackSelectTrace(order=tuple(order), scores=tuple(scores)))
            sis_arr = np.asarray(sis, dtype=np.int64)
            masker.mask(current, sis_arr)
            remaining = np.setdiff1d(remaining, sis_arr, assume_unique=True)

    def _backselect(
        self, start: np.ndarray, candidates: np.ndarray, round_: int
    ) -> Generator[ScoreRequest, np.ndarray, tuple[list[int], list[float], list[bool]]]:
        """Remove every candidate feature, most dispensable first.

        Returns the removal order, the recorded score after each removal, and whether each recorded
        score is exact (f of the input with exactly the features so far removed). In batched mode the
        j-th of the ``k`` features removed in one step records the score of removing it alone, except
        the last, which records the exact score of the input with all ``k`` removed (one extra row).
        """
        batch_k = self.params.batch_k
        masker = self._masker
        state = start.copy()
        rem = candidates.copy()  # ascending feature ids: argmax/stable sort break ties by lowest id
        order: list[int] = []
        scores: list[float] = []
        exact: list[bool] = []
        step = 0
        while rem.size:
            s = yield from self._masked(state, rem)
            if batch_k == 1 or rem.size == 1:  # one removal: the exact step
                best = int(s.argmax())
                if s[best] != s[best]:  # argmax lands on the first NaN when there is one; NaN ranks last
                    best = int(np.argmax(np.where(np.isnan(s), -np.inf, s)))
                feature = int(rem[best])
                masker.mask_one(state, feature)
                order.append(feature)
                scores.append(float(s[best]))
                exact.append(True)
                rem[best:-1] = rem[best + 1 :]  # close the gap in place; rem stays ascending
                rem = rem[:-1]
            else:
                picks = np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")[:batch_k]
                chosen = rem[picks]
                masker.mask(state, chosen)
                order.extend(int(f) for f in chosen)
                scores.extend(float(v) for v in s[picks[:-1]])
                exact.extend([False] * (picks.size - 1))
                scores.append(float((yield from self._inputs(state[None, :].copy()))[0]))
                exact.append(True)
                rem = np.delete(rem, picks)
            if self.progress is not None:
                self.progress(
                    ProgressEvent(round=round_, step=step, features_left=int(rem.size), evaluations=self.evaluations)
                )
            step += 1
        return order, scores, exact


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


@runtime_checkable
class SearchDriver(Protocol):
    """A score function that can run a whole :class:`SISSearch` itself (e.g. on a model's worker
    thread, batched with other searches); :func:`find_sis` hands it the search instead of asking
    for every step's scores."""

    async def drive(self, search: SISSearch) -> None: ...


async def find_sis(
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    score: ScoreFn,
    params: SISParams,
    progress: Callable[[ProgressEvent], None] | None = None,
    *,
    full_score: float | None = None,
) -> SISResult:
    """Find a collection of disjoint sufficient input subsets of ``x``.

    Args:
        x: one input (no batch axis).
        baseline: values of masked elements, the shape of ``x`` (cast to its dtype).
        groups: group map of ``x``'s shape (see :mod:`.features`); feature ``g`` is the elements
            where ``groups == g``.
        score: ``await score(batch)`` → ``(n,)`` target-class scores of ``(n, *x.shape)`` inputs;
            a :class:`SearchDriver` runs the whole search itself instead.
        params: threshold, collection size, mode, budget and chunking.
        progress: called after every BackSelect step.
        full_score: ``f(x)`` when the caller has scored it already (it still counts as one
            evaluation; only ``f(baseline)`` is run).

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
    search = SISSearch(x, baseline, groups, params, progress, full_score=full_score)
    drive = getattr(score, "drive", None)  # a SearchDriver (cheaper than a runtime Protocol check)
    if drive is not None:
        await drive(search)
    else:
        await _drive(search, score)
    return search.result()


async def _drive(search: SISSearch, score: ScoreFn) -> None:
    """Run ``search`` with an async score function: each request in chunks of ``chunk_size`` rows,
    at most ``max_inflight_chunks`` awaited at once (rows are built only once their chunk may run)."""
    chunk = int(search.params.chunk_size)
    gate = asyncio.Semaphore(int(search.params.max_inflight_chunks))

    async def part(req: ScoreRequest, start: int, stop: int) -> np.ndarray:
        async with gate:
            out = np.asarray(await score(req.rows(start, stop)), dtype=np.float64)
        if out.shape != (stop - start,):
            n = stop - start
            _log.error("score function returned shape %s for %d rows, expected (%d,)", out.shape, n, n)
            raise ScoringError("scoring failed: the model returned a malformed result")
        return out

    while (req := search.request) is not None:
        parts = [part(req, a, min(a + chunk, req.size)) for a in range(0, req.size, chunk)]
        search.feed(np.concatenate(await gather_or_cancel(parts)))
