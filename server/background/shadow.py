"""Shadow explanations: explain a sampled share of live Predict rows in the background.

Per pair, ``shadow.sample_rate`` of the rows Predict sees (0 disables) are sampled
(:mod:`.sampling`); a worker explains them one at a time on both models with the pair's Explain
defaults, at most ``shadow.max_per_second`` a second, at BACKGROUND priority (the batchers run
background work only when no client submission waits, and never in the same batch). The data plane
reports each finished explanation to its observer with ``source="shadow"``, which feeds the
agreement metrics, and adds its measures to the pair's verdict.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import numpy as np

from sisguard.server.background.sampling import SamplerGroup, SamplingConfig, SamplingObserver
from sisguard.server.batching.batcher import BACKGROUND
from sisguard.server.core.resolve import ExplainOptions
from sisguard.server.pairs import Pair


class ShadowExplanations(SamplerGroup[SamplingObserver]):
    """Explains sampled Predict rows on both models with the pair's Explain defaults."""

    name = "shadow"

    def settings(self, pair: Pair) -> SamplingConfig:
        return pair.config.shadow

    def handler(self, pair: Pair) -> Callable[[np.ndarray], Awaitable[None]]:
        async def explain(row: np.ndarray) -> None:
            deadline = time.monotonic() + self.timeout
            await self.dataplane.explain(
                pair.name, row[None], ExplainOptions(), deadline, priority=BACKGROUND, source="shadow", signal=True
            )

        return explain
