"""A model's inputs: which one carries the features, how the others are fed.

A model may take several inputs (a transformer: ``input_ids`` and ``attention_mask``). One of them
carries the *features* (what Predict rows are and what Explain masks); every other input is either
*passed through* from the request (the same values for every masked copy of an explained input) or
*derived* from the features:

* ``presence``: 1 where the feature element is not the pad token id, else 0 — an attention mask
  that follows which tokens are present, so a token masked to the pad id is also hidden from
  attention;
* ``zeros`` / ``ones``: a constant tensor of the features' shape (``token_type_ids``).

A batch for :meth:`InputPlan.feeds` is either the features array alone (every other input derived)
or a structured array with one field per input that the request carried (missing derived inputs
are derived). Structured arrays concatenate and slice like plain ones, so the batcher and the step
worker need not know about several inputs.

Auto-detection (no ``inputs`` in the pair config): a model with one input feeds it; otherwise the
input named by ``input_name`` (else ``input_ids``) carries the features, ``attention_mask`` is
derived by presence, ``token_type_ids`` is derived as zeros and any other input is passed through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Role = Literal["features", "passthrough", "derived"]
Derive = Literal["presence", "zeros", "ones"]

#: names the auto-detection recognises (Hugging Face exports)
_AUTO_DERIVED: dict[str, Derive] = {"attention_mask": "presence", "token_type_ids": "zeros"}
_AUTO_FEATURES = "input_ids"


class InputPlanError(ValueError):
    """The model's inputs and the pair config do not say unambiguously how to feed it."""


@dataclass(frozen=True)
class ModelInput:
    """One input of the model: per-sample shape (``-1`` for a dynamic axis) and how it is fed."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    role: Role
    derive: Derive | None = None

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)

    def describe(self) -> str:
        dims = ", ".join("n" if d < 0 else str(d) for d in self.shape)
        return f"{self.name} [batch{', ' if dims else ''}{dims}] {self.dtype.name}"


@dataclass(frozen=True)
class RuleConfig:
    """How the pair config says an input is fed (mirrors ``InputConfig``)."""

    name: str
    role: Role
    derive: Derive | None = None


@dataclass(frozen=True)
class InputPlan:
    features: ModelInput
    others: tuple[ModelInput, ...]
    pad_token_id: int
    vocab_size: int | None = None

    @property
    def all(self) -> tuple[ModelInput, ...]:
        return (self.features, *self.others)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.all)

    @property
    def passthrough(self) -> tuple[ModelInput, ...]:
        return tuple(i for i in self.others if i.role == "passthrough")

    @property
    def single(self) -> bool:
        """Only the features are needed to run the model (nothing passed through)."""
        return not self.passthrough

    def by_name(self, name: str) -> ModelInput | None:
        return next((i for i in self.all if i.name == name), None)

    def derived_value(self, spec: ModelInput, features: np.ndarray) -> np.ndarray:
        if spec.derive == "presence":
            return (features != self.pad_token_id).astype(spec.dtype)
        fill = 1 if spec.derive == "ones" else 0
        return np.full(features.shape, fill, dtype=spec.dtype)

    def feeds(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """ONNX Runtime feeds for a batch (the features array, or a structured array of inputs)."""
        given: dict[str, np.ndarray]
        if batch.dtype.names:
            given = {n: np.ascontiguousarray(batch[n]) for n in batch.dtype.names}
        else:
            given = {self.features.name: batch}
        x = given[self.features.name]
        feeds = {self.features.name: x}
        for spec in self.others:
            if spec.name in given:
                feeds[spec.name] = given[spec.name]
            elif spec.role == "derived":
                feeds[spec.name] = self.derived_value(spec, x)
            else:  # checked before any row is queued; a missing input here is a server bug
                raise RuntimeError(f"input {spec.name} is passed through but the batch does not carry it")
        return feeds

    def pack(self, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
        """The batch for ``tensors`` (each ``[rows, ...]``): the features array alone when that is all
        there is, else a structured array with one field per tensor (model input order)."""
        if set(tensors) == {self.features.name}:
            return tensors[self.features.name]
        order = [i.name for i in self.all if i.name in tensors]
        rows = int(tensors[self.features.name].shape[0])
        dtype = np.dtype([(n, tensors[n].dtype, tensors[n].shape[1:]) for n in order])
        out = np.empty(rows, dtype=dtype)
        for n in order:
            out[n] = tensors[n]
        return out

    def example(self, rows: int, length: int) -> np.ndarray:
        """A warm-up batch: every dynamic axis ``length`` long, the pad-free features set to 1."""
        shape = tuple(length if d < 0 else d for d in self.features.shape)
        x = np.ones((rows, *shape), dtype=self.features.dtype)
        tensors = {self.features.name: x}
        for spec in self.passthrough:
            tensors[spec.name] = np.zeros((rows, *(length if d < 0 else d for d in spec.shape)), dtype=spec.dtype)
        return self.pack(tensors)


def plan_inputs(
    inputs: Sequence[ModelInput],
    rules: Sequence[RuleConfig] | None,
    feature_name: str | None,
    pad_token_id: int,
    vocab_size: int | None,
    path: Path,
) -> InputPlan:
    """Assign a role to each of the model's inputs (``inputs`` come with role "features" as a placeholder)."""
    by_name = {i.name: i for i in inputs}
    names = ", ".join(by_name)
    roles: dict[str, tuple[Role, Derive | None]] = {}
    if rules:
        for r in rules:
            if r.name not in by_name:
                raise InputPlanError(f"{path}: pair config names input {r.name!r}, the model has {names}")
            roles[r.name] = (r.role, r.derive)
        features = [n for n, (role, _) in roles.items() if role == "features"]
        if len(features) != 1:
            raise InputPlanError(f"{path}: exactly one input must have role features, the pair config gives {features}")
        feature = features[0]
        undeclared = [n for n in by_name if n not in roles]
        if undeclared:
            raise InputPlanError(
                f"{path}: the pair config's inputs do not say how to feed {', '.join(undeclared)} "
                "(role passthrough or derived)"
            )
    else:
        if feature_name is not None:
            if feature_name not in by_name:
                raise InputPlanError(f"{path}: has no input named {feature_name!r} (it has {names})")
            feature = feature_name
        elif len(by_name) == 1:
            feature = next(iter(by_name))
        elif _AUTO_FEATURES in by_name:
            feature = _AUTO_FEATURES
        else:
            raise InputPlanError(
                f"{path}: has {len(by_name)} inputs ({names}); say which carries the features with "
                "input_name, or list them under inputs in the pair config (docs/byom.md)"
            )
        for n in by_name:
            if n != feature:
                derive = _AUTO_DERIVED.get(n)
                roles[n] = ("derived", derive) if derive else ("passthrough", None)
    for n, (role, derive) in roles.items():
        if role == "derived" and derive is None:
            raise InputPlanError(f"{path}: derived input {n} needs derive: presence, zeros or ones")
    fspec = by_name[feature]
    others: list[ModelInput] = []
    for spec in inputs:
        if spec.name == feature:
            continue
        role, derive = roles[spec.name]
        if role == "derived" and (len(spec.shape) != len(fspec.shape) or spec.dtype.kind not in "biuf"):
            raise InputPlanError(
                f"{path}: derived input {spec.name} {spec.describe()} must have the rank of the features "
                f"input {fspec.describe()} and a numeric type"
            )
        others.append(ModelInput(spec.name, spec.dtype, spec.shape, role, derive))
    return InputPlan(
        ModelInput(fspec.name, fspec.dtype, fspec.shape, "features"), tuple(others), pad_token_id, vocab_size
    )


def embedding_vocab_size(model: object, input_name: str) -> int | None:
    """Rows of the embedding table an integer input indexes (a ``Gather`` of an initializer by it),
    or None when the graph does not show one."""
    graph = model.graph  # type: ignore[attr-defined]
    inits = {i.name: i for i in graph.initializer}
    sizes = set()
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == input_name:
            init = inits.get(node.input[0])
            if init is not None and init.dims:
                sizes.add(int(init.dims[0]))
    return sizes.pop() if len(sizes) == 1 else None
