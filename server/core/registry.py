"""The served pairs: loading, readiness, lookup by pair name and by Open Inference Protocol name."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sisguard.server.config import LimitsConfig, Settings
from sisguard.server.core.resolve import check_pair_files
from sisguard.server.errors import NotFound, Unavailable
from sisguard.server.pairs import BatchObservers, Pair, split_infer_name
from sisguard.server.runtime.model import ModelLoadError
from sisguard.server.runtime.providers import choose_providers

log = logging.getLogger(__name__)


class PairRegistry:
    """Every configured pair, loaded, verified and warmed up; ready between :meth:`start` and :meth:`close`."""

    def __init__(self, settings: Settings, batch_observers: BatchObservers | None = None) -> None:
        self.settings = settings
        self.limits: LimitsConfig = settings.limits
        self._batch_observers = batch_observers
        self.pairs: dict[str, Pair] = {}
        self._ready = False

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Load, verify and warm up every model and read each pair's explain files (blocking; call
        before serving). Raises ModelLoadError naming the model file and the problem, ConfigError
        naming an explain file that cannot be read or does not fit."""
        if not self.settings.pairs:
            raise ModelLoadError("no pairs configured")
        runtime = self.settings.runtime
        choice = choose_providers(list(runtime.providers), runtime.device_id)
        for pc in self.settings.pairs:
            pair = Pair(pc, runtime, choice, self._batch_observers)
            check_pair_files(pair, self.limits)
            pair.warm_up()
            self.pairs[pc.name] = pair
        reasons = {m.cuda_reason for p in self.pairs.values() for m in p.models.values() if m.cuda_reason}
        if reasons:
            log.warning("no usable GPU: %s; running on CPU", "; ".join(sorted(reasons)))
        for p in self.pairs.values():
            log.info(
                "pair %s ready: dense %s on %s, pruned %s on %s, prune ratio %.3f, %s",
                p.name,
                p.config.dense.name,
                p.models["dense"].provider,
                p.config.pruned.name,
                p.models["pruned"].provider,
                p.prune_ratio,
                f"control {p.config.control.name}" if p.config.control is not None
                else ("offline calibration" if p.config.calibration_file is not None else "no control"),
            )

    def start(self) -> None:
        """Start the batchers (needs the running event loop) and mark the pairs ready."""
        for p in self.pairs.values():
            p.start()
        self._ready = True

    async def close(self) -> None:
        self._ready = False
        for p in self.pairs.values():
            await p.close()

    # -- lookups ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def require_ready(self) -> None:
        if not self._ready:
            raise Unavailable("server is not ready (starting or shutting down)")

    def get(self, name: str) -> Pair:
        """The pair to serve a request (refused while loading or after close)."""
        self.require_ready()
        try:
            return self.pairs[name]
        except KeyError:
            raise NotFound(f"unknown pair {name!r}; available: {', '.join(sorted(self.pairs)) or '(none)'}") from None

    def by_infer_name(self, name: str) -> tuple[Pair, str]:
        """The pair and variant of an Open Inference Protocol model name ``<pair>.<dense|pruned|control>``."""
        parts = split_infer_name(name)
        if parts is not None:
            pair = self.pairs.get(parts[0])
            if pair is not None and parts[1] in pair.models:
                return pair, parts[1]
        known = [p.infer_name(v) for p in self.pairs.values() for v in p.variants]
        raise NotFound(f"unknown model {name!r}; available: {', '.join(known)}")

    def __iter__(self) -> Iterator[Pair]:
        return iter(self.pairs.values())

    def __len__(self) -> int:
        return len(self.pairs)
