"""A served pair: the dense and the pruned model (and, when configured, the control: the dense model
retrained like the pruned one but not pruned), checked against each other, with their batchers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sisguard.server.batching.batcher import Batcher, BatchObserver
from sisguard.server.config import PairConfig, RuntimeConfig
from sisguard.server.runtime.model import ModelLoadError, ModelRuntime
from sisguard.server.runtime.providers import ProviderChoice

log = logging.getLogger(__name__)

VARIANTS = ("dense", "pruned")
#: every model a pair may serve; ``control`` only when the pair configures one
ALL_VARIANTS = ("dense", "pruned", "control")


@dataclass(frozen=True)
class ModelFacts:
    """What ListModels and ModelMetadata report about one file."""

    path: str
    sha256: str
    parameter_count: int
    nonzero_parameter_count: int
    execution_provider: str
    infer_name: str


class Pair:
    """Both models of a pair, loaded, verified and warmed up; a batcher per model."""

    def __init__(
        self,
        config: PairConfig,
        runtime: RuntimeConfig,
        choice: ProviderChoice,
        observer: BatchObserver | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.models: dict[str, ModelRuntime] = {}
        self.variants: tuple[str, ...] = (*VARIANTS, *(("control",) if config.control is not None else ()))
        for variant in self.variants:
            self.models[variant] = ModelRuntime(
                getattr(config, variant),
                choice=choice,
                intra_op_threads=runtime.intra_op_threads,
                inter_op_threads=runtime.inter_op_threads,
                input_name=config.input_name,
                output_name=config.output_name,
                expected_sha256=getattr(config, f"{variant}_sha256"),
            )
        self._check_signatures()
        self.batchers = {
            v: Batcher(
                self.infer_name(v),
                m.run,
                max_batch_size=config.max_batch_size,
                max_queue_delay=config.max_queue_delay_ms / 1000.0,
                queue_capacity=config.queue_capacity,
                observer=observer,
            )
            for v, m in self.models.items()
        }

    @property
    def has_control(self) -> bool:
        return "control" in self.models

    def _check_signatures(self) -> None:
        dense = self.models["dense"].signature
        for variant in self.variants[1:]:
            other = self.models[variant].signature
            for what in ("input_shape", "input_dtype", "output_shape"):
                a, b = getattr(dense, what), getattr(other, what)
                if a != b:
                    raise ModelLoadError(
                        f"{getattr(self.config, variant)}: {what.replace('_', ' ')} {b} differs from the dense "
                        f"model's {a} ({self.config.dense})"
                    )
        labels = self.config.class_labels
        if labels and len(labels) != self.num_outputs:
            raise ModelLoadError(
                f"pair {self.name}: {len(labels)} class labels configured, the models have {self.num_outputs} outputs"
            )
        if self.config.output_kind != "scores" and self.num_outputs < 2:
            raise ModelLoadError(
                f"pair {self.name}: output kind {self.config.output_kind} needs at least 2 classes; "
                f"use output_kind: scores for a single output"
            )

    # -- facts ------------------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.models["dense"].signature.input_shape

    @property
    def input_dtype(self) -> np.dtype:
        return self.models["dense"].signature.input_dtype

    @property
    def num_outputs(self) -> int:
        return self.models["dense"].num_outputs

    def infer_name(self, variant: str) -> str:
        """The model's name in the Open Inference Protocol: ``<pair>.dense`` / ``.pruned`` / ``.control``."""
        return f"{self.name}.{variant}"

    def facts(self, variant: str) -> ModelFacts:
        m = self.models[variant]
        return ModelFacts(
            path=m.path.name,
            sha256=m.facts.sha256,
            parameter_count=m.facts.parameter_count,
            nonzero_parameter_count=m.facts.nonzero_parameter_count,
            execution_provider=m.provider,
            infer_name=self.infer_name(variant),
        )

    @property
    def prune_ratio(self) -> float:
        dense = self.models["dense"].facts.parameter_count
        return 1.0 - self.models["pruned"].facts.nonzero_parameter_count / dense if dense else 0.0

    # -- lifecycle --------------------------------------------------------------------------

    def warm_up(self) -> None:
        for m in self.models.values():
            m.warm_up(self.config.max_batch_size)

    def start(self) -> None:
        for b in self.batchers.values():
            b.start()

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
