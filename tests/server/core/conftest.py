"""A data plane over real ONNX Runtime sessions, without gRPC (the core is transport-neutral)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from support.server import write_config

from sisguard.server.config import load_settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.metrics import Metrics

Build = Callable[..., DataPlane]


@pytest.fixture
def group_map_file(tmp_path: Path) -> Path:
    """Four quadrants of the 8x8 input as four features."""
    groups = np.zeros((1, 8, 8), np.int32)
    groups[:, :4, 4:], groups[:, 4:, :4], groups[:, 4:, 4:] = 1, 2, 3
    path = tmp_path / "quadrants.npy"
    np.save(path, groups)
    return path


@pytest.fixture
def build(tmp_path: Path, model_pair: tuple[Path, Path]) -> Build:
    """``build(explain={...}, limits={...}, metrics=...)``: a loaded (not started) data plane on the mini pair."""
    dense, pruned = model_pair

    def make(*, explain: dict[str, Any] | None = None, metrics: Metrics | None = None, **top: Any) -> DataPlane:
        pair = {"name": "mini", "dense": str(dense), "pruned": str(pruned), "output_kind": "logits",
                "max_batch_size": 8, "explain": {"threshold": 0.95, "threshold_relative": True, **(explain or {})}}
        config = write_config(tmp_path, [pair], runtime={"providers": ["cpu"], "intra_op_threads": 1}, **top)
        dataplane = DataPlane(load_settings(config), observer=metrics)
        dataplane.load()
        return dataplane

    return make


@pytest.fixture
async def dataplane(build: Build) -> AsyncIterator[DataPlane]:
    dp = build()
    dp.start()
    try:
        yield dp
    finally:
        await dp.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8), dtype=np.float32)


@pytest.fixture
def make_rows() -> Callable[..., np.ndarray]:
    return rows
