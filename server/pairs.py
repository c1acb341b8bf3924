"""A served pair: the dense and the pruned model (and, when configured, the control: the dense model
retrained like the pruned one but not pruned), checked against each other, with their batchers.

:meth:`Pair.run` and :meth:`Pair.score_fn` are the only ways to a model: Predict, ModelInfer, the
explain use case, shadow explanations and the probes all go through them. The Open Inference
Protocol names of the models (``<pair>.<variant>``) are made and taken apart here only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sisguard.server.batching.batcher import FOREGROUND, Batcher, BatchObserver
from sisguard.server.config import ConfigError, PairConfig, RuntimeConfig
from sisguard.server.probabilities import target_probability, to_probabilities
from sisguard.server.runtime.inputs import InputPlan, RuleConfig
from sisguard.server.runtime.model import ModelLoadError, ModelRuntime
from sisguard.server.runtime.providers import ProviderChoice
from sisguard.sis import ScoreFn

log = logging.getLogger(__name__)

VARIANTS = ("dense", "pruned")
#: every model a pair may serve; ``control`` only when the pair configures one
ALL_VARIANTS = ("dense", "pruned", "control")

#: ``(pair, variant) -> observer`` of that model's batcher (``Metrics.batch_observer``)
BatchObservers = Callable[[str, str], BatchObserver | None]


def infer_name(pair: str, variant: str) -> str:
    """A model's name in the Open Inference Protocol: ``<pair>.dense`` / ``.pruned`` / ``.control``."""
    return f"{pair}.{variant}"


def split_infer_name(name: str) -> tuple[str, str] | None:
    """``"<pair>.<variant>"`` → ``(pair, variant)``; None when the name ends in no known variant.

    >>> split_infer_name("a.b.pruned"), split_infer_name("mini")
    (('a.b', 'pruned'), None)
    """
    pair, _, variant = name.rpartition(".")
    return (pair, variant) if pair and variant in ALL_VARIANTS else None


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
        batch_observers: BatchObservers | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.models: dict[str, ModelRuntime] = {}
        self.variants: tuple[str, ...] = (*VARIANTS, *(("control",) if config.control is not None else ()))
        rules = None if config.inputs is None else [RuleConfig(i.name, i.role, i.derive) for i in config.inputs]
        text = config.text
        for variant in self.variants:
            self.models[variant] = ModelRuntime(
                getattr(config, variant),
                choice=choice,
                intra_op_threads=runtime.intra_op_threads,
                inter_op_threads=runtime.inter_op_threads,
                input_name=config.input_name,
                output_name=config.output_name,
                expected_sha256=getattr(config, f"{variant}_sha256"),
                input_rules=rules,
                pad_token_id=0 if text is None else text.pad_token_id,
                vocab_size=None if text is None else text.vocab_size,
            )
        self._check_signatures()
        #: the configured feature names (``feature_names`` or ``feature_names_file``), one per element
        self.feature_names = _feature_names(config, self.input_shape)
        #: the configured ``text.tokenizer_file``'s JSON, sent to clients for raw text
        self.tokenizer_json = _read_text(config, "text.tokenizer_file", None if text is None else text.tokenizer_file)
        #: the configured ``explain.group_map_file`` and ``explain.mean_file``, read once at start-up
        self.group_map = _load_npy(self.name, "group_map_file", config.explain.group_map_file)
        self.mean = _load_npy(self.name, "mean_file", config.explain.mean_file)
        if config.explain.mean_values is not None:
            self.mean = _inline_mean(config, self.input_shape)
        self.batchers = {
            v: Batcher(
                self.infer_name(v),
                m.run,
                max_batch_size=config.max_batch_size,
                max_queue_delay=config.max_queue_delay_ms / 1000.0,
                queue_capacity=config.queue_capacity,
                observer=None if batch_observers is None else batch_observers(self.name, v),
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
            a_in = [(i.name, i.dtype.name, i.shape, i.role) for i in self.models["dense"].plan.all]
            b_in = [(i.name, i.dtype.name, i.shape, i.role) for i in self.models[variant].plan.all]
            if a_in != b_in:
                raise ModelLoadError(
                    f"{getattr(self.config, variant)}: inputs {b_in} differ from the dense model's {a_in} "
                    f"({self.config.dense})"
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

    @property
    def plan(self) -> InputPlan:
        """How the models' inputs are fed (the features and the other inputs)."""
        return self.models["dense"].plan

    @property
    def dynamic(self) -> bool:
        """The features input has a dynamic axis (a sequence length)."""
        return self.plan.features.dynamic

    def infer_name(self, variant: str) -> str:
        """The model's name in the Open Inference Protocol (:func:`infer_name`)."""
        return infer_name(self.name, variant)

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

    # -- the models -------------------------------------------------------------------------

    async def run(
        self, variant: str, rows: np.ndarray, *, deadline: float | None = None, priority: int = FOREGROUND
    ) -> np.ndarray:
        """Raw outputs ``[rows, classes]`` of one model, through its batcher."""
        return await self.batchers[variant].submit(rows, deadline=deadline, priority=priority)

    async def probabilities(
        self, variant: str, rows: np.ndarray, *, deadline: float | None = None, priority: int = FOREGROUND
    ) -> np.ndarray:
        """:meth:`run` as probabilities (softmax for logits; probabilities and scores as they are)."""
        raw = await self.run(variant, rows, deadline=deadline, priority=priority)
        return to_probabilities(raw, self.config.output_kind)

    def score_fn(
        self,
        variant: str,
        target: int,
        *,
        deadline: float | None = None,
        priority: int = FOREGROUND,
        extras: dict[str, np.ndarray] | None = None,
    ) -> ScoreFn:
        """The SIS engine's view of one model: ``await fn(batch)`` → the probability of ``target`` per row.

        ``extras``: the passed-through inputs of the explained input (one sample each), fed with every
        masked copy."""
        kind = self.config.output_kind
        prepare = None if not extras else self.prepare_fn(extras)

        def scores(raw: np.ndarray) -> np.ndarray:
            return target_probability(raw, kind, target)  # to_probabilities(...)[:, target], bit for bit

        # also runs whole SIS searches on the model's worker thread, batched step by step with the
        # other explanations on this model (see sisguard.server.batching.steps)
        return self.batchers[variant].score_fn(scores, deadline=deadline, priority=priority, prepare=prepare)

    def prepare_fn(self, extras: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        """Feature rows → model batch with the passed-through ``extras`` (one sample each) repeated."""
        plan = self.plan

        def prepare(rows: np.ndarray) -> np.ndarray:
            n = rows.shape[0]
            tensors = {plan.features.name: rows}
            tensors.update({k: np.broadcast_to(v, (n, *v.shape)) for k, v in extras.items()})
            return plan.pack(tensors)

        return prepare

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


def _inline_mean(config: PairConfig, shape: tuple[int, ...]) -> np.ndarray:
    """``explain.mean_values``: one value per element of a fixed-shape input."""
    values = np.asarray(config.explain.mean_values, dtype=np.float64)
    if not all(d > 0 for d in shape) or values.size != int(np.prod(shape)):
        raise ConfigError(
            f"pair {config.name}: explain.mean_values has {values.size} values, expected one per element "
            f"of the input {list(shape)}"
        )
    return values.reshape(shape)


def _read_text(config: PairConfig, what: str, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"pair {config.name}: cannot read {what} {path}: {exc}") from exc


def _feature_names(config: PairConfig, shape: tuple[int, ...]) -> list[str]:
    """``feature_names`` or the lines of ``feature_names_file``; one per element of a fixed-shape input."""
    names = list(config.feature_names)
    text = _read_text(config, "feature_names_file", config.feature_names_file)
    if text is not None:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        return []
    size = int(np.prod(shape)) if all(d > 0 for d in shape) else -1
    if len(names) != size:
        raise ConfigError(
            f"pair {config.name}: {len(names)} feature names configured, the input has "
            f"{size if size > 0 else 'a variable number of'} elements"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"pair {config.name}: feature names must be distinct")
    return names


def _load_npy(pair: str, what: str, path: Path | None) -> np.ndarray | None:
    """A configured ``.npy`` file, read once; unreadable files stop the start-up with one line."""
    if path is None:
        return None
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as exc:  # missing, not .npy, pickled
        raise ConfigError(f"pair {pair}: cannot read explain.{what} {path}: {exc}") from exc
