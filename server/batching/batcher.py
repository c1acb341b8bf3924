"""Dynamic batching: one batcher per model.

A worker task takes waiting submissions, runs them as one batch on a worker thread and hands
each caller its own rows. When the model is idle a submission is dispatched at once; while a
batch runs, new submissions pile up and form the next (full) batch, so low load gets low
latency and high load gets full batches without a fixed wait. ``max_queue_delay`` adds an
optional wait for more rows when a batch is not full.

Submissions larger than ``max_batch_size`` are split into chunks and reassembled in order.
Two priority lanes: background work (shadow explanations) is dispatched only when no
foreground submission is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np

from sisguard.server.batching.steps import BACKGROUND, FOREGROUND, BatchObserver, ModelWorker
from sisguard.server.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from sisguard.sis import SISSearch

__all__ = ["BACKGROUND", "FOREGROUND", "BatchObserver", "Batcher", "ModelScore"]


@dataclass(eq=False)
class _Item:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    deadline: float | None
    priority: int = FOREGROUND
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """Coalesces row submissions for one model and runs them with ``run_fn`` off the event loop.

    >>> import asyncio, numpy as np
    >>> async def demo():
    ...     b = Batcher("double", lambda x: x * 2, max_batch_size=4)
    ...     b.start()
    ...     out = await b.submit(np.arange(6, dtype=np.float32).reshape(6, 1))
    ...     await b.close()
    ...     return out.ravel().tolist()
    >>> asyncio.run(demo())
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """

    def __init__(
        self,
        name: str,
        run_fn: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int,
        max_queue_delay: float = 0.0,
        queue_capacity: int = 8192,
        executor: Executor | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.name = name
        self._run = run_fn
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay
        self.queue_capacity = queue_capacity
        self._own_executor = executor is None
        #: the model's worker thread: it runs this batcher's batches (unless another executor is
        #: given) and every SIS search on the model (:meth:`score_fn`)
        self.worker: ModelWorker = (
            executor
            if isinstance(executor, ModelWorker)
            else ModelWorker(name, run_fn, max_rows=max_batch_size, observer=observer)
        )
        self._executor: Executor = executor or self.worker
        self._observer = observer
        self._lanes: tuple[deque[_Item], deque[_Item]] = (deque(), deque())
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- public interface -------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    async def close(self) -> None:
        """Stop taking work, fail what is still queued with UNAVAILABLE, stop the worker."""
        self._closed = True
        for lane in self._lanes:
            while lane:
                item = lane.popleft()
                if not item.future.done():
                    item.future.set_exception(Unavailable(f"model {self.name} is shutting down"))
        self._set_queued(0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_executor or self.worker is not self._executor:
            self.worker.shutdown(wait=False)
        if self._own_executor and self._executor is not self.worker:
            self._executor.shutdown(wait=False)

    async def submit(
        self, rows: np.ndarray, *, deadline: float | None = None, priority: int = FOREGROUND
    ) -> np.ndarray:
        """Outputs for ``rows`` (first axis = rows), in order.

        ``deadline`` is a ``time.monotonic()`` instant; rows still queued past it are dropped
        with DeadlineExceeded. Raises ResourceExhausted when the queue cannot take the rows.
        Cancelling the caller drops its chunks that have not started.
        """
        if self._closed:
            raise Unavailable(f"model {self.name} is shutting down")
        n = int(rows.shape[0])
        if n == 0:
            raise ValueError("submit needs at least one row")
        if self._queued_rows + n > self.queue_capacity:
            raise ResourceExhausted(
                f"queue of model {self.name} is full ({self._queued_rows} rows waiting, "
                f"capacity {self.queue_capacity}); retry later"
            )
        loop = asyncio.get_running_loop()
        items = [
            _Item(rows[i : i + self.max_batch_size], loop.create_future(), deadline, priority)
            for i in range(0, n, self.max_batch_size)
        ]
        self._lanes[priority].extend(items)
        self._set_queued(self._queued_rows + n)
        self._wakeup.set()
        try:
            if len(items) == 1:  # awaited directly: one event-loop hop fewer than gather
                return await items[0].future
            outs = await asyncio.gather(*(it.future for it in items))
        except BaseException:
            for it in items:  # a failed or cancelled caller frees its queue slots
                it.future.cancel()
            raise
        return np.concatenate(outs, axis=0)

    def score_fn(
        self,
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        deadline: float | None = None,
        priority: int = FOREGROUND,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> ModelScore:
        """A score function over this model for the SIS engine: ``transform(raw)`` maps the model's
        ``[n, outputs]`` rows to ``(n,)`` scores (target class, probabilities); ``prepare(rows)``, when
        given, turns the engine's feature rows into the model's batch (passed-through inputs)."""
        return ModelScore(self, transform, deadline, priority, prepare)

    # -- worker -----------------------------------------------------------------------------

    def _set_queued(self, rows: int) -> None:
        self._queued_rows = rows
        if self._observer is not None:
            self._observer.queue_changed(self.name, rows)

    def _pending_rows(self) -> int:
        return sum(len(it.rows) for lane in self._lanes for it in lane)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not (self._lanes[0] or self._lanes[1]):
                self._wakeup.clear()
                await self._wakeup.wait()
            if self.max_queue_delay > 0:
                await self._linger()
            batch = self._take()
            if not batch:
                continue
            await self._execute(loop, batch)

    async def _linger(self) -> None:
        """Wait for more rows up to max_queue_delay after the oldest waiting submission."""
        oldest = min(lane[0].enqueued for lane in self._lanes if lane)
        while self._pending_rows() < self.max_batch_size:
            remaining = oldest + self.max_queue_delay - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _take(self) -> list[_Item]:
        """Whole submissions (chunks) up to max_batch_size rows, foreground lane first."""
        now = time.monotonic()
        batch: list[_Item] = []
        taken = 0
        dropped = 0
        for lane in self._lanes:
            if batch and lane is self._lanes[BACKGROUND]:
                break  # background work never shares a batch with (and so never delays) foreground
            skipped: list[_Item] = []  # rows of another shape (a dynamic axis): a later batch, in order
            while lane and taken + len(lane[0].rows) <= self.max_batch_size:
                item = lane.popleft()
                if item.future.done():  # caller cancelled
                    dropped += len(item.rows)
                    continue
                if item.deadline is not None and now >= item.deadline:
                    dropped += len(item.rows)
                    item.future.set_exception(DeadlineExceeded(f"deadline passed while queued for model {self.name}"))
                    continue
                if batch and (item.rows.shape[1:], item.rows.dtype) != (batch[0].rows.shape[1:], batch[0].rows.dtype):
                    skipped.append(item)
                    continue
                batch.append(item)
                taken += len(item.rows)
            lane.extendleft(reversed(skipped))
        self._set_queued(self._queued_rows - taken - dropped)
        return batch

    async def _execute(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        """Run ``batch`` on the executor; its callers' futures are resolved straight from the
        completion callback, so a caller resumes (and may submit its next rows, which this worker
        then takes without waiting to be woken) one event-loop hop after the run ends."""
        inputs = batch[0].rows if len(batch) == 1 else np.concatenate([it.rows for it in batch], axis=0)
        started = time.monotonic()
        done: asyncio.Future[bool] = loop.create_future()  # True: the batch failed, run its callers one by one

        def finished(run: Future[np.ndarray]) -> None:  # on the executor's thread
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self._deliver, batch, run, started, done)

        try:
            if isinstance(self._executor, ModelWorker):  # priority lanes on the model's worker thread
                run = self._executor.submit_at(batch[0].priority, self._run, inputs)
            else:
                run = self._executor.submit(self._run, inputs)
        except Exception as exc:  # e.g. the executor was shut down: fail this batch's callers
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(exc)
            return
        run.add_done_callback(finished)
        if await done:
            # A failed batch of several callers is run again caller by caller, so that one caller's
            # bad rows (an out-of-vocabulary token, say) fail that caller only, not everyone it shared
            # the batch with.
            for it in batch:
                if not it.future.done():
                    await self._execute(loop, [it])

    def _deliver(self, batch: list[_Item], run: Future[np.ndarray], started: float, done: asyncio.Future[bool]) -> None:
        exc = run.exception()
        if exc is not None and len(batch) > 1:
            if not done.done():
                done.set_result(True)  # retried per caller by _execute
            return
        if exc is not None:  # the batch's own caller gets the failure; the worker goes on
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(exc)
        else:
            outputs = run.result()
            if self._observer is not None:
                self._observer.batch_done(
                    self.name,
                    sum(len(it.rows) for it in batch),
                    [started - it.enqueued for it in batch],
                    time.monotonic() - started,
                )
            offset = 0
            for it in batch:
                n = len(it.rows)
                if not it.future.done():
                    it.future.set_result(outputs[offset : offset + n])
                offset += n
        if not done.done():
            done.set_result(False)


class ModelScore:
    """An async score function over one model that also runs whole SIS searches on the model's
    worker thread (a :class:`~sisguard.sis.SearchDriver`): :func:`~sisguard.sis.find_sis` given one
    pays no event-loop hop per BackSelect step, and the steps of every search in flight on the
    model share its runs. Single rows (``await fn(rows)``) go through the batcher as before."""

    def __init__(
        self,
        batcher: Batcher,
        transform: Callable[[np.ndarray], np.ndarray],
        deadline: float | None,
        priority: int,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self._batcher = batcher
        self._transform = transform
        self._prepare = prepare
        self.deadline = deadline
        self.priority = priority

    async def __call__(self, rows: np.ndarray) -> np.ndarray:
        batch = rows if self._prepare is None else self._prepare(rows)
        raw = await self._batcher.submit(batch, deadline=self.deadline, priority=self.priority)
        return self._transform(raw)

    async def drive(self, search: SISSearch) -> None:
        if self._batcher.closed:
            raise Unavailable(f"model {self._batcher.name} is shutting down")
        await self._batcher.worker.search(
            search, self._transform, deadline=self.deadline, priority=self.priority, prepare=self._prepare
        )
