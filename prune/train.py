"""Training and retraining loops (CPU-friendly, deterministic for a given seed).

Example:
    >>> from sisguard.prune.data import load_digits
    >>> from sisguard.prune.models import digits_cnn
    >>> ds = load_digits()
    >>> net = digits_cnn()
    >>> train(net, ds, TrainConfig(epochs=1), seed=0)
    >>> 0.0 <= accuracy(net, ds.x_test, ds.y_test) <= 1.0
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sisguard.prune.data import Dataset
from sisguard.prune.errors import PruneError
from sisguard.prune.wt import Masks, apply_masks

#: receives one progress line (the CLI prints it to stderr)
Log = Callable[[str], None]

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How to (re)train: epochs, optimiser and its settings."""

    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    weight_decay: float = 1e-4
    momentum: float = 0.9

    def validate(self, what: str = "training") -> None:
        """Raise :class:`PruneError` for settings that cannot work."""
        if self.epochs < 0:
            raise PruneError(f"{what}: epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise PruneError(f"{what}: learning rate must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise PruneError(f"{what}: batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise PruneError(f"{what}: unknown optimiser {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=True)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits of ``model`` (in eval mode) for all of ``x``."""
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(model(torch.from_numpy(x[start : start + batch_size])).numpy())
    model.train(was_training)
    return np.concatenate(outputs).astype(np.float32)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    return float((predict_logits(model, x).argmax(axis=1) == y).mean())


def train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    seed: int,
    masks: Masks | None = None,
    log: Log | None = None,
    label: str = "train",
) -> None:
    """Train ``model`` in place with cross-entropy; ``masks`` keep WT zeros at zero.

    Each epoch reports ``label``, the mean loss and the test accuracy through ``log``.
    """
    config.validate(label)
    if config.epochs == 0:
        return
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    optimizer = _make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.monotonic()
        order = torch.randperm(len(x), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            if masks:
                apply_masks(model, masks)
            total += float(loss.detach())
            batches += 1
        scheduler.step()
        if log is not None:
            acc = accuracy(model, data.x_test, data.y_test)
            log(f"[{label}] epoch {epoch}/{config.epochs}  loss {total / batches:.4f}  "
                f"test acc {100 * acc:.2f}%  ({time.monotonic() - started:.1f}s)")
    model.eval()
