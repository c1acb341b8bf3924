"""Shadow explanations: explain a sampled share of live Predict rows in the background.

Per pair, ``shadow.sample_rate`` of the rows Predict sees (0 disables) go into a bounded queue; a
worker explains them one at a time on both models with the pair's Explain defaults, at most
``shadow.max_per_second`` a second, at BACKGROUND priority (the batchers run background work only
when no client submission waits, and never in the same batch). The core reports each finished
explanation to its observer with ``source="shadow"``, which feeds the agreement metrics.

Sampling is a non-blocking call on the Predict path: a coin per row and an append; a full queue
drops the row and counts it (reason ``queue_full``). Failed explanations count as ``failed``,
rows still queued at shutdown as ``shutdown``.

:class:`RowSampler` is the shared machinery (also used by :mod:`.probes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sisguard.server.batching.batcher import BACKGROUND
from sisguard.server.explaining import ExplainOptions

if TYPE_CHECKING:
    from sisguard.server.pairs import Pair
    from sisguard.server.service import Service


class SamplingConfig(Protocol):
    sample_rate: float
    max_per_second: float
    queue_size: int


log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 60.0


class ShadowObserver(Protocol):
    def shadow_sampled_rows(self, pair: str, rows: int) -> None: ...

    def shadow_dropped_rows(self, pair: str, reason: str, rows: int = 1) -> None: ...

    def shadow_queue_changed(self, pair: str, rows: int) -> None: ...


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


class SamplerGroup:
    """One :class:`RowSampler` per pair over a started :class:`Service`; ``rows_predicted(pair, x)``
    is the Predict hook. Subclasses say which pairs take part, with which settings, and what is done
    with a sampled row; metrics go to ``observer.<kind>_sampled_rows`` / ``_dropped_rows`` /
    ``_queue_changed``. Create after the service has loaded its pairs; ``start`` needs the running loop.
    """

    kind = ""

    def __init__(
        self,
        service: Service,
        observer: object | None = None,
        *,
        rng: np.random.Generator | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.service = service
        self.observer = observer
        self.timeout = timeout
        self._rng = rng or np.random.default_rng()
        self.samplers: dict[str, RowSampler] = {}
        for name, pair in service.pairs.items():
            cfg = self.settings(pair)
            if cfg.sample_rate <= 0 or not self.eligible(pair):
                continue
            self.samplers[name] = RowSampler(
                f"{self.kind}-{name}",
                sample_rate=cfg.sample_rate,
                max_per_second=cfg.max_per_second,
                queue_size=cfg.queue_size,
                handle=self.handler(pair),
                on_sampled=lambda n, p=name: self._report("sampled_rows", p, n),
                on_dropped=lambda reason, n, p=name: self._report("dropped_rows", p, reason, n),
                on_queue=lambda n, p=name: self._report("queue_changed", p, n),
                rng=self._rng,
            )

    def settings(self, pair: Pair) -> SamplingConfig:
        raise NotImplementedError

    def eligible(self, pair: Pair) -> bool:
        return True

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        raise NotImplementedError

    def _report(self, event: str, *args: object) -> None:
        if self.observer is not None:
            getattr(self.observer, f"{self.kind}_{event}")(*args)

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


class ShadowExplanations(SamplerGroup):
    """Explains sampled Predict rows on both models with the pair's Explain defaults."""

    kind = "shadow"

    def settings(self, pair: Pair) -> SamplingConfig:
        return pair.config.shadow

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        async def explain(row: np.ndarray) -> None:
            deadline = time.monotonic() + self.timeout
            await self.service.explain(
                pair.name, row[None], ExplainOptions(), deadline, priority=BACKGROUND, source="shadow", signal=True
            )

        return explain
