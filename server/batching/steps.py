"""Iteration-level batching of SIS explanations: one worker thread per model runs every step.

An explanation is a chain of dependent BackSelect steps. Handing each step to the event loop and
back (an await, an executor hop, a ``call_soon_threadsafe`` per step) cost more than the model runs
on small models, so the steps never leave the model's thread: a :class:`ModelWorker` holds every
:class:`~sisguard.sis.SISSearch` in flight on its model, takes the current step of each (client
work first; background work only when no client search is waiting), builds their rows, runs the
model once over them (at most ``max_rows`` rows, so memory stays ``O(max_rows × input size)``),
splits the scores back and advances each search — the way continuous batching serves many
sequences at once. Only a search's completion and its progress events (coalesced: one event-loop
callback for however many steps finished meanwhile) cross back to the event loop.

ONNX Runtime releases the GIL inside ``run``, so the dense, pruned and control models, each on its
own worker, really run in parallel.

The same worker is the :class:`~concurrent.futures.Executor` of the model's :class:`Batcher`, so
every run of a model (predictions, single rows, SIS steps) happens on one thread, in priority order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sisguard.server.errors import DeadlineExceeded, Unavailable
from sisguard.sis import ProgressEvent, SISSearch

FOREGROUND = 0
BACKGROUND = 1


class BatchObserver(Protocol):
    """What a model's batcher and worker report; the metrics module implements it (one per model)."""

    def batch_done(self, model: str, rows: int, queue_wait: list[float], compute_seconds: float) -> None: ...

    def queue_changed(self, model: str, rows: int) -> None: ...

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any]


@dataclass(eq=False)
class _Job:
    """One search in flight on a worker; touched by the worker thread only, except the flags."""

    search: SISSearch
    transform: Callable[[np.ndarray], np.ndarray]
    deadline: float | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    progress: Callable[[ProgressEvent], None] | None
    #: feature rows -> model batch (passed-through inputs added); None: the rows are the batch
    prepare: Callable[[np.ndarray], np.ndarray] | None = None
    #: rows of jobs of one kind (input shape, batch dtype) share a model run; others wait their turn
    kind: tuple[object, ...] = ()
    cancelled: bool = False
    offset: int = 0  # rows of the current request already scored
    parts: list[np.ndarray] = field(default_factory=list)
    ready_since: float = field(default_factory=time.monotonic)
    events: list[ProgressEvent] = field(default_factory=list)
    flush_pending: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- worker thread side ---------------------------------------------------------------------

    def event(self, e: ProgressEvent) -> None:
        """Progress relay on the worker thread: at most one pending event-loop callback per job."""
        with self.lock:
            self.events.append(e)
            if self.flush_pending:
                return
            self.flush_pending = True
        self._on_loop(self._flush)

    def finish(self, exc: BaseException | None) -> None:
        self._on_loop(self._complete, exc)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self.loop.call_soon_threadsafe(fn, *args)

    # -- event loop side ------------------------------------------------------------------------

    def _flush(self) -> None:
        with self.lock:
            events, self.events, self.flush_pending = self.events, [], False
        if self.progress is None or self.future.done():
            return
        try:
            for e in events:
                self.progress(e)
        except Exception as exc:  # a failing progress callback fails its explanation, as in find_sis
            self.cancelled = True
            self.future.set_exception(exc)

    def _complete(self, exc: BaseException | None) -> None:
        self._flush()
        if self.future.done():
            return
        if exc is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(exc)


class ModelWorker(Executor):
    """The one thread that runs a model: plain calls (as an Executor) and SIS searches.

    ``run_fn(rows)`` is the model (``[n, *input] -> [n, outputs]``); ``max_rows`` bounds the rows of
    one step run. Work is taken in this order: foreground calls, foreground steps, background calls,
    background steps. The thread starts with the first piece of work.
    """

    def __init__(
        self,
        name: str,
        run_fn: Callable[[np.ndarray], np.ndarray],
        *,
        max_rows: int,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.name = name
        self._run = run_fn
        self.max_rows = max_rows
        self._observer = observer
        self._cond = threading.Condition()
        self._calls: tuple[deque[_Call], deque[_Call]] = (deque(), deque())
        self._jobs: tuple[list[_Job], list[_Job]] = ([], [])
        self._closed = False
        self._thread: threading.Thread | None = None
        #: rows of a step run are built in place here (``max_rows`` rows of the last input kind run),
        #: so a run allocates no rows and coalescing needs no concatenation
        self._buffer: np.ndarray | None = None

    @property
    def searches(self) -> int:
        """Searches in flight on this model (both lanes)."""
        with self._cond:
            return sum(1 for lane in self._jobs for j in lane if not j.cancelled)

    # -- Executor ----------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the worker thread as foreground work."""
        if kwargs:
            raise TypeError("ModelWorker.submit takes positional arguments only")
        return self.submit_at(FOREGROUND, fn, *args)

    def submit_at(self, priority: int, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the worker thread in the ``priority`` lane."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"model {self.name} is shutting down")
            self._calls[priority].append(_Call(fn, args, future))
            self._wake()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop: calls not started are cancelled, searches in flight fail with UNAVAILABLE."""
        with self._cond:
            self._closed = True
            calls = [c for lane in self._calls for c in lane]
            jobs = [j for lane in self._jobs for j in lane]
            for lane in self._calls:
                lane.clear()
            for lanej in self._jobs:
                lanej.clear()
            self._cond.notify_all()
        for c in calls:
            c.future.cancel()
        for j in jobs:
            j.finish(Unavailable(f"model {self.name} is shutting down"))
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # -- searches ----------------------------------------------------------------------------------

    async def search(
        self,
        search: SISSearch,
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        deadline: float | None = None,
        priority: int = FOREGROUND,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Run ``search`` to completion on this model, batched with every other search in flight.

        Only searches over inputs of one shape (and, with ``prepare``, one batch dtype) share a run:
        inputs of a dynamic length are coalesced with inputs of the same length only.

        ``transform(raw)`` turns the model's ``[n, outputs]`` rows into the ``(n,)`` scores the
        search needs (target class, probabilities). ``deadline`` (``time.monotonic()``) fails the
        search with DeadlineExceeded before its next step once passed. Cancelling the caller drops
        the search before its next step; the others go on. The search's progress callback is called
        on the event loop, in order, before this returns.
        """
        loop = asyncio.get_running_loop()
        if search.done:
            return
        req = search.request
        probe = None if req is None or prepare is None else prepare(req.rows(0, 1))
        kind = (search.shape, search.dtype if probe is None else probe.dtype)
        job = _Job(search, transform, deadline, loop, loop.create_future(), search.progress, prepare, kind)
        if job.progress is not None:
            search.progress = job.event
        with self._cond:
            if self._closed:
                raise Unavailable(f"model {self.name} is shutting down")
            self._jobs[priority].append(job)
            self._wake()
        try:
            await job.future
        except BaseException:
            job.cancelled = True  # the worker drops it before its next step
            raise
        finally:
            search.progress = job.progress

    # -- the worker thread -------------------------------------------------------------------------

    def _wake(self) -> None:
        """Start the thread on first use, wake it otherwise (holding ``_cond``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"model-{self.name}", daemon=True)
            self._thread.start()
        self._cond.notify()

    def _next(self) -> _Call | list[_Job] | None:
        """The next piece of work in priority order (holding ``_cond``); ``None`` once closed."""
        while not self._closed:
            for lane in (FOREGROUND, BACKGROUND):
                if self._calls[lane]:
                    return self._calls[lane].popleft()
                jobs = self._jobs[lane]
                if any(j.cancelled for j in jobs):
                    jobs[:] = [j for j in jobs if not j.cancelled]
                if jobs:
                    return jobs[:]
            self._cond.wait()
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                work = self._next()
            if work is None:
                return
            if isinstance(work, _Call):
                if work.future.set_running_or_notify_cancel():
                    try:
                        work.future.set_result(work.fn(*work.args))
                    except BaseException as exc:
                        work.future.set_exception(exc)
            else:
                try:
                    self._step(work)
                except Exception:  # never let the thread die: fail what was in this run
                    _log.exception("step run of model %s failed unexpectedly", self.name)
                    for job in work:
                        self._fail(job, Unavailable(f"model {self.name} failed to run the explanation"))

    def _step(self, jobs: list[_Job]) -> None:
        """One model run over the current steps of ``jobs`` (in order), up to ``max_rows`` rows."""
        now = time.monotonic()
        taken: list[tuple[_Job, int, int]] = []  # job, first row, rows
        room = self.max_rows
        prepared = False  # a job with passed-through inputs is in the run
        for job in jobs:
            if room == 0:
                break
            if taken and job.kind != taken[0][0].kind:
                continue  # another input shape: a later run
            if job.deadline is not None and now >= job.deadline:
                self._fail(job, DeadlineExceeded(f"deadline passed during the explanation on model {self.name}"))
                continue
            req = job.search.request
            if req is None:  # cannot happen: finished jobs are removed
                self._remove(job)
                continue
            n = min(req.size - job.offset, room)
            taken.append((job, job.offset, n))
            room -= n
            prepared = prepared or job.prepare is not None
        if not taken:
            return
        batch, parts = self._rows(taken, self.max_rows - room, prepared)
        if len(jobs) > 1:
            self._rotate(taken[0][0])
        started = time.monotonic()
        try:
            raw = self._run(batch)
        except Exception as exc:
            if len(taken) == 1:
                self._fail(taken[0][0], exc)
                return
            # One search's bad rows fail that search only: run each part alone.
            outputs: list[np.ndarray | None] = []
            for (job, _, _), rows in zip(taken, parts, strict=True):
                try:
                    outputs.append(self._run(rows))
                except Exception as one:
                    self._fail(job, one)
                    outputs.append(None)
            self._report(taken, started)
            for (job, _, n), out in zip(taken, outputs, strict=True):
                if out is not None:
                    self._advance(job, out, n)
            return
        self._report(taken, started)
        offset = 0
        for job, _, n in taken:
            self._advance(job, raw[offset : offset + n], n)
            offset += n

    def _rows(
        self, taken: list[tuple[_Job, int, int]], total: int, prepared: bool
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The run's batch of ``total`` rows and each job's part of it. Feature rows are built
        straight into the worker's buffer (consecutive slices: the batch is a view, nothing is
        concatenated); when a job has passed-through inputs (``prepare``) each part is its own
        array and the parts are joined."""
        first = taken[0][0]
        if prepared:
            parts = [job.search.request.rows(a, a + n) for job, a, n in taken]  # type: ignore[union-attr]
            parts = [p if job.prepare is None else job.prepare(p) for (job, _, _), p in zip(taken, parts, strict=True)]
            return (parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)), parts
        buf = self._buffer
        if buf is None or (buf.shape[1:], buf.dtype) != first.kind:
            buf = self._buffer = np.empty((self.max_rows, *first.search.shape), dtype=first.search.dtype)
        parts = []
        row = 0
        for job, a, n in taken:
            parts.append(job.search.request.rows(a, a + n, out=buf[row : row + n]))  # type: ignore[union-attr]
            row += n
        return buf[:total], parts

    def _report(self, taken: list[tuple[_Job, int, int]], started: float) -> None:
        if self._observer is not None:
            self._observer.batch_done(
                self.name, sum(n for _, _, n in taken), [started - j.ready_since for j, _, _ in taken],
                time.monotonic() - started,
            )

    def _advance(self, job: _Job, raw: np.ndarray, n: int) -> None:
        """Give ``job`` the outputs of its ``n`` rows; feed its search once the step is complete."""
        if job.cancelled:
            return
        try:
            scores = np.asarray(job.transform(raw), dtype=np.float64).reshape(-1)
            req = job.search.request
            if job.parts or (req is not None and job.offset + n < req.size):  # a step spanning several runs
                job.parts.append(scores.copy())  # its rows' buffer is reused by the next run
                job.offset += n
                if req is not None and job.offset < req.size:
                    return
                scores = np.concatenate(job.parts)
                job.parts, job.offset = [], 0
            job.search.feed(scores)
        except Exception as exc:  # malformed scores, a failing progress relay: this search only
            self._fail(job, exc)
            return
        job.ready_since = time.monotonic()
        if job.search.done:
            self._remove(job)
            job.finish(None)

    def _fail(self, job: _Job, exc: BaseException) -> None:
        self._remove(job)
        job.finish(exc)

    def _remove(self, job: _Job) -> None:
        job.cancelled = True
        with self._cond:
            for lane in self._jobs:
                if job in lane:
                    lane.remove(job)

    def _rotate(self, first: _Job) -> None:
        """Move the search that led this run to the back of its lane: a search whose step spans
        several runs takes turns with the others instead of holding the model until it is done."""
        with self._cond:
            for lane in self._jobs:
                if first in lane and len(lane) > 1:
                    lane.remove(first)
                    lane.append(first)
