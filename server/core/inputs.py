"""Checks of the input tensors every use case shares: dtype, shape, row count, finiteness."""

from __future__ import annotations

import numpy as np

from sisguard.server.config import LimitsConfig
from sisguard.server.errors import InvalidArgument, ResourceExhausted
from sisguard.server.pairs import Pair


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join("n" if d < 0 else str(d) for d in shape)


def shape_fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """``shape`` (one sample) matches ``expected``, where ``-1`` (a dynamic axis) takes any positive length."""
    pairs = zip(shape, expected, strict=True)
    return len(shape) == len(expected) and all((e < 0 and s > 0) or s == e for s, e in pairs)


def check_rows(pair: Pair, x: np.ndarray, limits: LimitsConfig, name: str = "input") -> None:
    """A batch ``[rows, *input_shape]`` of the pair's dtype, finite, within the limits (a dynamic axis
    takes any length); token ids within the vocabulary."""
    expected = pair.input_shape
    if x.dtype != pair.input_dtype:
        raise InvalidArgument(f"{name} dtype {x.dtype} does not match pair {pair.name}: expected {pair.input_dtype}")
    if x.ndim != len(expected) + 1 or not shape_fits(tuple(x.shape[1:]), expected):
        raise InvalidArgument(
            f"{name} shape {list(x.shape)} does not match pair {pair.name}: "
            f"expected [batch, {_dims(expected)}]" + (" (n: any length)" if pair.dynamic else "")
        )
    if x.shape[0] == 0:
        raise InvalidArgument("empty batch: send at least one row")
    if x.shape[0] > limits.max_batch_rows:
        raise ResourceExhausted(f"batch of {x.shape[0]} rows exceeds the server limit of {limits.max_batch_rows} rows")
    check_finite(x)
    text = pair.config.text
    if text is not None and text.max_length is not None and x.ndim >= 2 and x.shape[-1] > text.max_length:
        raise InvalidArgument(
            f"{name} has {x.shape[-1]} tokens: pair {pair.name} takes at most {text.max_length} (text.max_length)"
        )
    vocab = pair.plan.vocab_size
    if vocab is not None and x.size:
        bad = (x < 0) | (x >= vocab)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise InvalidArgument(
                f"{name} holds token id {int(x[first])} at index {list(map(int, first))}: pair {pair.name}'s "
                f"vocabulary is ids 0 to {vocab - 1} ({int(bad.sum())} ids out of range)"
            )


def one_input(pair: Pair, x: np.ndarray, limits: LimitsConfig) -> np.ndarray:
    """One input of the pair (``[*input_shape]``, or ``[1, *input_shape]``), checked like a row."""
    shape = pair.input_shape
    if x.ndim == len(shape) + 1 and x.shape[0] == 1 and shape_fits(tuple(x.shape[1:]), shape):
        x = x[0]
    if not shape_fits(tuple(x.shape), shape):
        raise InvalidArgument(
            f"input shape {list(x.shape)} does not match pair {pair.name}: expected one input "
            f"[{_dims(shape)}] (or [1, {_dims(shape)}])"
        )
    check_rows(pair, x[None], limits)
    return x


def check_finite(x: np.ndarray) -> None:
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise InvalidArgument(
                f"input holds {int(bad.sum())} NaN or Inf values (first at index {list(map(int, first))}); "
                "all values must be finite"
            )
