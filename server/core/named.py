"""Requests that carry several named tensors: checked against the pair's inputs, packed for the models.

A one-input pair still takes one plain tensor. For a pair whose model takes several inputs
(sisguard.server.runtime.inputs), a request sends the features input and every passed-through
input, and may send the derived ones (Predict and ModelInfer then feed them as sent; Explain
derives them for every masked copy and refuses values that disagree with the derivation).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sisguard.server.config import LimitsConfig
from sisguard.server.core.inputs import check_finite, check_rows, shape_fits
from sisguard.server.errors import InvalidArgument, ResourceExhausted
from sisguard.server.pairs import Pair
from sisguard.server.runtime.inputs import ModelInput

Given = np.ndarray | Mapping[str, np.ndarray]

#: key of a mapping's entry that is the features input whatever its name (the request's plain tensor)
FEATURES_KEY = ""


def expected_inputs(pair: Pair) -> str:
    """What the pair takes, for messages: ``input_ids [batch, n] int64, attention_mask [...] (derived, optional)``."""
    parts = []
    for spec in pair.plan.all:
        note = {"derived": " (derived, optional)", "passthrough": " (required)"}.get(spec.role, "")
        parts.append(spec.describe() + note)
    return ", ".join(parts)


def _as_mapping(pair: Pair, given: Given | None) -> dict[str, np.ndarray]:
    plan = pair.plan
    if given is None:
        raise InvalidArgument(f"inputs missing: pair {pair.name} takes {expected_inputs(pair)}")
    tensors = {plan.features.name: given} if isinstance(given, np.ndarray) else dict(given)
    if FEATURES_KEY in tensors:
        if plan.features.name in tensors:
            raise InvalidArgument(
                f"the features input {plan.features.name} is sent twice: in the plain tensor and by name"
            )
        tensors[plan.features.name] = tensors.pop(FEATURES_KEY)
    unknown = [n for n in tensors if plan.by_name(n) is None]
    if unknown:
        raise InvalidArgument(f"unknown input {unknown[0]!r}: pair {pair.name} takes {expected_inputs(pair)}")
    missing = [s.name for s in (plan.features, *plan.passthrough) if s.name not in tensors]
    if missing:
        raise InvalidArgument(f"input {missing[0]} missing: pair {pair.name} takes {expected_inputs(pair)}")
    return tensors


def _check_total(tensors: Mapping[str, np.ndarray], limits: LimitsConfig) -> None:
    """The limit on elements applies to a request's tensors together."""
    total = sum(int(t.size) for t in tensors.values())
    if len(tensors) > 1 and total > limits.max_elements:
        raise ResourceExhausted(
            f"inputs {', '.join(tensors)} hold {total} elements together, which exceed the server limit of "
            f"{limits.max_elements} elements"
        )


def _check_other(pair: Pair, spec: ModelInput, t: np.ndarray, x: np.ndarray) -> None:
    fname = pair.plan.features.name
    if t.dtype != spec.dtype:
        raise InvalidArgument(
            f"input {spec.name} dtype {t.dtype} does not match pair {pair.name}: expected {spec.dtype}"
        )
    if t.ndim != len(spec.shape) + 1 or not shape_fits(tuple(t.shape[1:]), spec.shape):
        raise InvalidArgument(
            f"input {spec.name} shape {list(t.shape)} does not match pair {pair.name}: expected {spec.describe()}"
        )
    if t.shape[0] != x.shape[0]:
        raise InvalidArgument(f"input {spec.name} has {t.shape[0]} rows, {fname} has {x.shape[0]}: they must match")
    if len(spec.shape) == len(pair.input_shape) and t.shape != x.shape and (spec.dynamic or pair.dynamic):
        raise InvalidArgument(
            f"input {spec.name} has shape {list(t.shape)}, {fname} has {list(x.shape)}: their lengths must match"
        )
    check_finite(t)


def batch_of(pair: Pair, given: Given | None, limits: LimitsConfig) -> np.ndarray:
    """Predict and ModelInfer rows: every tensor checked, packed into the models' batch."""
    tensors = _as_mapping(pair, given)
    _check_total(tensors, limits)
    fname = pair.plan.features.name
    x = tensors[fname]
    check_rows(pair, x, limits, name=f"input {fname}" if not pair.plan.single or len(tensors) > 1 else "input")
    for name, t in tensors.items():
        if name != fname:
            _check_other(pair, pair.plan.by_name(name), t, x)  # type: ignore[arg-type]
    return pair.plan.pack(tensors)


def explain_inputs(pair: Pair, given: Given, limits: LimitsConfig) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Explain's one input: the features (``[1, ...]`` or without the batch axis) and the
    passed-through inputs, each one sample without its batch axis."""
    tensors = _as_mapping(pair, given)
    _check_total(tensors, limits)
    plan = pair.plan
    x = tensors[plan.features.name]
    batched = x.ndim == len(pair.input_shape) + 1
    rows = x if batched else x[None]
    extras: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        if name == plan.features.name:
            continue
        spec = plan.by_name(name)
        if spec is None:  # refused by _as_mapping already
            continue
        if not batched and t.ndim != len(spec.shape):
            raise InvalidArgument(
                f"input {name} shape {list(t.shape)} does not match pair {pair.name}: expected one sample like "
                f"{plan.features.name} {list(x.shape)} (without the batch axis)"
            )
        t1 = t if batched else t[None]
        _check_other(pair, spec, t1, rows)
        if spec.role == "passthrough":
            extras[name] = t1[0]
        elif not np.array_equal(t1, plan.derived_value(spec, rows)):
            rule = (
                f"1 exactly where {plan.features.name} is not the pad id {plan.pad_token_id}"
                if spec.derive == "presence" else f"all {spec.derive}"
            )
            raise InvalidArgument(
                f"input {name} must be {rule}: Explain derives it from the features for every masked copy "
                "(send it so, or leave it out)"
            )
    return x, extras
