"""Sampling Predict rows for background work: shadow explanations and probes.

Per pair, a share of the rows Predict sees (``sample_rate``; 0 disables) go into a bounded queue;
one worker hands them to the background job one at a time, at most ``max_per_second`` a second.
Sampling is a non-blocking call on the Predict path: a coin per row and an append; a full queue
drops the row and counts it (reason ``queue_full``). Failed jobs count as ``failed``, rows still
queued at shutdown as ``shutdown``. What is sampled and dropped goes to a
:class:`SamplingObserver`; each kind of background work has its own (the metrics module gives one
per kind).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import numpy as np

from sisguard.server.core.dataplane import DataPlane
from sisguard.server.pairs import Pair


class SamplingConfig(Protocol):
    sample_rate: float
    max_per_second: float
    queue_size: int


log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 60.0


class SamplingObserver(Protocol):
    """What a :class:`SamplerGroup` reports about its rows."""

    def sampled_rows(self, pair: str, rows: int) -> None: ...

    def dropped_rows(self, pair: str, reason: str, rows: int) -> None: ...

    def queue_changed(self, pair: str, rows: int) -> None: ...


class RateLimiter:
    """At most ``per_second`` acquisitions a second, no bursts (monotonic clock)."""

    def __init__(self, per_second: float) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        self.interval = 1.0 / per_second
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
            now = time.monotonic()
        self._next = max(self._next, now) + self.interval


class RowSampler:
    """Samples rows into a bounded queue; one worker task hands them to ``handle`` within a rate budget.

    ``offer`` never blocks and never raises: it is called on the Predict path. ``on_sampled``,
    ``on_dropped(reason, rows)`` and ``on_queue(rows)`` report to the metrics.
    """

    def __init__(
        self,
        name: str,
        *,
        sample_rate: float,
        max_per_second: float,
        queue_size: int,
        handle: Callable[[np.ndarray], Awaitable[None]],
        on_sampled: Callable[[int], None],
        on_dropped: Callable[[str, int], None],
        on_queue: Callable[[int], None],
        rng: np.random.Generator,
    ) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.queue_size = queue_size
        self._limiter = RateLimiter(max_per_second)
        self._handle = handle
        self._on_sampled, self._on_dropped, self._on_queue = on_sampled, on_dropped, on_queue
        self._rng = rng
        self._queue: deque[np.ndarray] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.handled = 0  # rows handed to ``handle`` that finished without error

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, x: np.ndarray) -> int:
        """Sample rows of ``x`` (first axis = rows); returns how many were sampled."""
        if self._closed or self.sample_rate <= 0 or len(x) == 0:
            return 0
        picked = np.flatnonzero(self._rng.random(len(x)) < self.sample_rate)
        if picked.size == 0:
            return 0
        self._on_sampled(int(picked.size))
        room = max(self.queue_size - len(self._queue), 0)
        for i in picked[:room]:
            self._queue.append(np.array(x[i], copy=True))  # not a view of the request buffer
        if picked.size > room:
            self._on_dropped("queue_full", int(picked.size - room))
        self._on_queue(len(self._queue))
        self._wakeup.set()
        return int(picked.size)

    def start(self) -> None:
        if self._task is None and self.sample_rate > 0:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"sampler-{self.name}")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            self._on_dropped("shutdown", len(self._queue))
            self._queue.clear()
            self._on_queue(0)

    async def _worker(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._limiter.acquire()
            row = self._queue.popleft()
            self._on_queue(len(self._queue))
            try:
                await self._handle(row)
            except asyncio.CancelledError:
                self._on_dropped("shutdown", 1)
                raise
            except Exception as exc:  # a failed background job is counted, never fatal
                log.debug("%s: background job failed: %s", self.name, exc)
                self._on_dropped("failed", 1)
            else:
                self.handled += 1


Obs = TypeVar("Obs", bound=SamplingObserver)


class SamplerGroup(Generic[Obs]):
    """One :class:`RowSampler` per pair of a started :class:`DataPlane`; ``rows_predicted(pair, x)``
    is the Predict hook. Subclasses say which pairs take part, with which settings, and what is done
    with a sampled row; ``Obs`` is the observer they report to. Create after the data plane has loaded
    its pairs; ``start`` needs the running loop.
    """

    name = ""  # names the samplers' tasks

    def __init__(
        self,
        dataplane: DataPlane,
        observer: Obs | None = None,
        *,
        rng: np.random.Generator | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.dataplane = dataplane
        self.observer = observer
        self.timeout = timeout
        self._rng = rng or np.random.default_rng()
        self.samplers: dict[str, RowSampler] = {}
        obs = observer
        for name, pair in dataplane.pairs.items():
            cfg = self.settings(pair)
            if cfg.sample_rate <= 0 or not self.eligible(pair):
                continue
            self.samplers[name] = RowSampler(
                f"{self.name}-{name}",
                sample_rate=cfg.sample_rate,
                max_per_second=cfg.max_per_second,
                queue_size=cfg.queue_size,
                handle=self.handler(pair),
                on_sampled=(lambda n, p=name: obs.sampled_rows(p, n)) if obs else _ignore,
                on_dropped=(lambda reason, n, p=name: obs.dropped_rows(p, reason, n)) if obs else _ignore,
                on_queue=(lambda n, p=name: obs.queue_changed(p, n)) if obs else _ignore,
                rng=self._rng,
            )

    def settings(self, pair: Pair) -> SamplingConfig:
        raise NotImplementedError

    def eligible(self, pair: Pair) -> bool:
        return True

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        raise NotImplementedError

    def rows_predicted(self, pair: str, x: np.ndarray) -> None:
        sampler = self.samplers.get(pair)
        if sampler is not None:
            sampler.offer(x)

    def start(self) -> None:
        for s in self.samplers.values():
            s.start()

    async def close(self) -> None:
        for s in self.samplers.values():
            await s.close()


def _ignore(*args: object) -> None:
    """The report of a group without an observer."""
