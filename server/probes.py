"""Noise probes: does the pruned model still decide like the dense one a little off the clean input?

Pruned networks that match the dense one on clean inputs can disagree much more under small
perturbations (Liebenwein et al., "Lost in Pruning", MLSys 2021). For a sampled share of Predict
rows (``shadow.noise_probe.sample_rate``; 0 disables) this module runs ``copies`` noisy copies per
configured level ``eps`` — ``x + u`` with ``u`` uniform in ``[-eps, eps]`` per element, the same
copies for both models — through the pair's batchers at BACKGROUND priority, and reports how many
copies get the same top-1 class from both models, per level. Inputs are not clipped: the levels
are in the model's input units.

Only floating-point inputs are probed (a pair with integer inputs logs a warning and is skipped).
Sampling, the bounded queue, the rate budget and drop counting are :class:`.shadow.RowSampler`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from sisguard.server.batching.batcher import BACKGROUND
from sisguard.server.errors import Unavailable
from sisguard.server.shadow import DEFAULT_TIMEOUT_SECONDS, RowSampler

if TYPE_CHECKING:
    from sisguard.server.pairs import Pair
    from sisguard.server.service import Service


log = logging.getLogger(__name__)


class ProbeObserver(Protocol):
    def probe_sampled_rows(self, pair: str, rows: int) -> None: ...

    def probe_dropped_rows(self, pair: str, reason: str, rows: int = 1) -> None: ...

    def probe_queue_changed(self, pair: str, rows: int) -> None: ...

    def probe_result(self, pair: str, level: float, copies: int, agreeing: int) -> None: ...


def noisy_copies(x: np.ndarray, levels: Sequence[float], copies: int, rng: np.random.Generator) -> np.ndarray:
    """``[len(levels) * copies, *x.shape]``: level-major blocks of ``x + U(-eps, eps)`` in ``x``'s dtype."""
    blocks = [x[None] + rng.uniform(-eps, eps, size=(copies, *x.shape)).astype(x.dtype, copy=False) for eps in levels]
    return np.concatenate(blocks, axis=0).astype(x.dtype, copy=False)


def agreement_per_level(dense: np.ndarray, pruned: np.ndarray, levels: int, copies: int) -> list[int]:
    """Copies per level whose top-1 class is the same for both models' raw outputs ``[levels*copies, classes]``."""
    same = dense.reshape(len(dense), -1).argmax(axis=1) == pruned.reshape(len(pruned), -1).argmax(axis=1)
    return [int(b) for b in same.reshape(levels, copies).sum(axis=1)]


class NoiseProbes:
    """Per-pair noise probe samplers over a started :class:`Service`; ``rows_predicted`` is the Predict hook."""

    def __init__(
        self,
        service: Service,
        observer: ProbeObserver | None = None,
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
            cfg = pair.config.shadow.noise_probe
            if cfg.sample_rate <= 0:
                continue
            if not np.issubdtype(pair.input_dtype, np.floating):
                log.warning(
                    "pair %s: noise probes need floating-point inputs (%s); not probing", name, pair.input_dtype
                )
                continue
            self.samplers[name] = RowSampler(
                f"probe-{name}",
                sample_rate=cfg.sample_rate,
                max_per_second=cfg.max_per_second,
                queue_size=cfg.queue_size,
                handle=self._prober(pair),
                on_sampled=lambda n, p=name: self._report("probe_sampled_rows", p, n),
                on_dropped=lambda reason, n, p=name: self._report("probe_dropped_rows", p, reason, n),
                on_queue=lambda n, p=name: self._report("probe_queue_changed", p, n),
                rng=self._rng,
            )

    def _report(self, method: str, *args: object) -> None:
        if self.observer is not None:
            getattr(self.observer, method)(*args)

    def _prober(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        cfg = pair.config.shadow.noise_probe
        levels, copies = list(cfg.levels), cfg.copies

        async def probe(row: np.ndarray) -> None:
            if not self.service.ready:
                raise Unavailable("server is not ready")
            batch = noisy_copies(row, levels, copies, self._rng)
            deadline = time.monotonic() + self.timeout
            dense, pruned = await asyncio.gather(
                *(pair.batchers[v].submit(batch, deadline=deadline, priority=BACKGROUND) for v in ("dense", "pruned"))
            )
            for eps, agreeing in zip(levels, agreement_per_level(dense, pruned, len(levels), copies), strict=True):
                self._report("probe_result", pair.name, eps, copies, agreeing)

        return probe

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
