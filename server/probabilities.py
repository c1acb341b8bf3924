"""Raw model outputs as callers see them: probabilities (softmax for logits), top-1 and its probability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VariantOutput:
    probabilities: np.ndarray  # [rows, classes] float32 (softmax for logits)
    top1: np.ndarray  # [rows] int32
    top1_probability: np.ndarray  # [rows] float32


def to_probabilities(raw: np.ndarray, kind: str) -> np.ndarray:
    """Softmax for logits; probabilities and scores are used as they are."""
    if kind != "logits":
        return raw
    shifted = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(shifted, dtype=np.float64)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def target_probability(raw: np.ndarray, kind: str, target: int) -> np.ndarray:
    """``to_probabilities(raw, kind)[:, target]`` as float64, bit for bit, without the other columns.

    The SIS engine needs one class per row and calls this once per BackSelect step, so it skips the
    division and float32 rounding of every other class: the same shift (the row's float32 maximum),
    the same float64 exponentials and sum, the target's quotient rounded to float32 as before.
    """
    if kind != "logits":
        return raw[:, target].astype(np.float64)
    e = np.exp(raw - np.maximum.reduce(raw, axis=1, keepdims=True), dtype=np.float64)
    return (e[:, target] / np.add.reduce(e, axis=1)).astype(np.float32).astype(np.float64)


def summarize(probs: np.ndarray) -> VariantOutput:
    top1 = probs.argmax(axis=1).astype(np.int32)
    return VariantOutput(probs, top1, probs[np.arange(len(top1)), top1].astype(np.float32))
