"""Noise probes: does the pruned model still decide like the dense one a little off the clean input?

Pruned networks that match the dense one on clean inputs can disagree much more under small
perturbations (Liebenwein et al., "Lost in Pruning", MLSys 2021). For a sampled share of Predict
rows (``shadow.noise_probe.sample_rate``; 0 disables) this module runs ``copies`` noisy copies per
configured level ``eps`` — ``x + u`` with ``u`` uniform in ``[-eps, eps]`` per element, the same
copies for both models — through the pair's batchers at BACKGROUND priority, and reports how many
copies get the same top-1 class from both models, per level. Inputs are not clipped: the levels
are in the model's input units.

Only floating-point inputs are probed (a pair with integer inputs logs a warning and is skipped).
Sampling, the bounded queue, the rate budget and drop counting are :class:`.sampling.RowSampler`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import numpy as np

from sisguard.server.background.sampling import SamplerGroup, SamplingConfig, SamplingObserver
from sisguard.server.batching.batcher import BACKGROUND
from sisguard.server.config import ShiftSpec
from sisguard.server.pairs import Pair
from sisguard.server.signal.measures import probe_measures
from sisguard.server.signal.shifts import shift_applies, shifted_copies

log = logging.getLogger(__name__)


class NoiseProbeObserver(SamplingObserver, Protocol):
    """Sampling reports plus one result per probed row and noise level."""

    def probed(self, pair: str, level: float, copies: int, agreeing: int) -> None: ...


class ShiftProbeObserver(SamplingObserver, Protocol):
    """Sampling reports plus one result per probed row and shift: copies, unstable and disagreeing per variant."""

    def probed(
        self, pair: str, shift: str, copies: int, unstable: dict[str, int], disagreeing: dict[str, int]
    ) -> None: ...


def floating_inputs(pair: Pair, what: str) -> bool:
    """Probes perturb input values: only pairs with floating-point inputs take part (others are logged)."""
    if np.issubdtype(pair.input_dtype, np.floating):
        return True
    log.warning("pair %s: %s need floating-point inputs (%s); not probing", pair.name, what, pair.input_dtype)
    return False


def noisy_copies(x: np.ndarray, levels: Sequence[float], copies: int, rng: np.random.Generator) -> np.ndarray:
    """``[len(levels) * copies, *x.shape]``: level-major blocks of ``x + U(-eps, eps)`` in ``x``'s dtype."""
    blocks = [x[None] + rng.uniform(-eps, eps, size=(copies, *x.shape)).astype(x.dtype, copy=False) for eps in levels]
    return np.concatenate(blocks, axis=0).astype(x.dtype, copy=False)


def agreement_per_level(dense: np.ndarray, pruned: np.ndarray, levels: int, copies: int) -> list[int]:
    """Copies per level whose top-1 class is the same for both models' raw outputs ``[levels*copies, classes]``."""
    same = dense.reshape(len(dense), -1).argmax(axis=1) == pruned.reshape(len(pruned), -1).argmax(axis=1)
    return [int(b) for b in same.reshape(levels, copies).sum(axis=1)]


class NoiseProbes(SamplerGroup[NoiseProbeObserver]):
    """Runs noisy copies of sampled Predict rows through both models and counts top-1 agreement per level."""

    name = "probe"

    def settings(self, pair: Pair) -> SamplingConfig:
        return pair.config.shadow.noise_probe

    def eligible(self, pair: Pair) -> bool:
        return floating_inputs(pair, "noise probes")

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        cfg = pair.config.shadow.noise_probe
        levels, copies = list(cfg.levels), cfg.copies

        async def probe(row: np.ndarray) -> None:
            self.dataplane.registry.require_ready()
            batch = noisy_copies(row, levels, copies, self._rng)
            deadline = time.monotonic() + self.timeout
            dense, pruned = await asyncio.gather(
                *(pair.run(v, batch, deadline=deadline, priority=BACKGROUND) for v in ("dense", "pruned"))
            )
            for eps, agreeing in zip(levels, agreement_per_level(dense, pruned, len(levels), copies), strict=True):
                if self.observer is not None:
                    self.observer.probed(pair.name, eps, copies, agreeing)

        return probe


class ShiftProbes(SamplerGroup[ShiftProbeObserver]):
    """Runs shifted copies of sampled Predict rows through dense, pruned and control (docs/signal.md).

    Per sampled row and configured shift: the clean row and ``copies`` shifted copies go through
    every model of the pair at BACKGROUND priority; the probe measures (output distance and top-1
    disagreement with the dense model, and each model's instability against its own clean
    decision) feed the pair's verdict, and counts per shift go to the metrics.
    """

    name = "shift_probe"

    def settings(self, pair: Pair) -> SamplingConfig:
        return pair.config.shadow.shift_probe

    def eligible(self, pair: Pair) -> bool:
        return floating_inputs(pair, "shift probes")

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        cfg = pair.config.shadow.shift_probe
        shifts = probed_shifts(pair)
        skipped = [s.name for s in cfg.shifts if s not in shifts]
        if skipped:
            log.warning("pair %s: shifts %s need two spatial axes; not probing them", pair.name, ", ".join(skipped))

        async def probe(row: np.ndarray) -> None:
            self.dataplane.registry.require_ready()
            values = await shift_probe(pair, row, self._rng, deadline=time.monotonic() + self.timeout)
            signal = self.dataplane.signals.get(pair.name)
            if signal is not None:
                signal.add_values(values)
            for s in shifts:
                unstable = {v: round(values[f"instability/{s.name}"][v] * s.copies) for v in pair.variants}
                disagreeing = {
                    v: round(values[f"disagreement/{s.name}"][v] * s.copies) for v in pair.variants if v != "dense"
                }
                if self.observer is not None:
                    self.observer.probed(pair.name, s.name, s.copies, unstable, disagreeing)

        return probe


def probed_shifts(pair: Pair) -> list[ShiftSpec]:
    """The pair's configured shifts that apply to its input shape."""
    return [s for s in pair.config.shadow.shift_probe.shifts if shift_applies(s.kind, pair.input_shape)]


async def shift_probe(
    pair: Pair, row: np.ndarray, rng: np.random.Generator, *, deadline: float | None, priority: int = BACKGROUND
) -> dict[str, dict[str, float]]:
    """The probe measures of one input: the clean row and its shifted copies through every model of the pair."""
    cfg = pair.config.shadow.shift_probe
    shifts = probed_shifts(pair)
    variants = pair.variants
    blocks = [row[None]]
    for s in shifts:
        blocks.append(shifted_copies(row, s.kind, s.level, s.copies, cfg.value_range, rng))
    batch = np.concatenate(blocks, axis=0)
    runs = (pair.probabilities(v, batch, deadline=deadline, priority=priority) for v in variants)
    probs = dict(zip(variants, await asyncio.gather(*runs), strict=True))
    clean = {v: p[:1] for v, p in probs.items()}
    shifted: dict[str, dict[str, np.ndarray]] = {}
    start = 1
    for s in shifts:
        shifted[s.name] = {v: p[start : start + s.copies] for v, p in probs.items()}
        start += s.copies
    return probe_measures(clean, shifted, [v for v in variants if v != "dense"])
