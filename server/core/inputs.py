"""Checks of the input tensors every use case shares: dtype, shape, row count, finiteness."""

from __future__ import annotations

import numpy as np

from sisguard.server.config import LimitsConfig
from sisguard.server.errors import InvalidArgument, ResourceExhausted
from sisguard.server.pairs import Pair


def check_rows(pair: Pair, x: np.ndarray, limits: LimitsConfig) -> None:
    """A batch ``[rows, *input_shape]`` of the pair's dtype, finite, within the limits."""
    expected = pair.input_shape
    if x.dtype != pair.input_dtype:
        raise InvalidArgument(f"input dtype {x.dtype} does not match pair {pair.name}: expected {pair.input_dtype}")
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise InvalidArgument(
            f"input shape {list(x.shape)} does not match pair {pair.name}: "
            f"expected [batch, {', '.join(map(str, expected))}]"
        )
    if x.shape[0] == 0:
        raise InvalidArgument("empty batch: send at least one row")
    if x.shape[0] > limits.max_batch_rows:
        raise ResourceExhausted(f"batch of {x.shape[0]} rows exceeds the server limit of {limits.max_batch_rows} rows")
    check_finite(x)


def one_input(pair: Pair, x: np.ndarray, limits: LimitsConfig) -> np.ndarray:
    """One input of the pair (``[*input_shape]``, or ``[1, *input_shape]``), checked like a row."""
    shape = pair.input_shape
    if tuple(x.shape) == (1, *shape):
        x = x[0]
    if tuple(x.shape) != shape:
        raise InvalidArgument(
            f"input shape {list(x.shape)} does not match pair {pair.name}: expected one input "
            f"[{', '.join(map(str, shape))}] (or [1, {', '.join(map(str, shape))}])"
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
