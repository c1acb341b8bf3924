from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.models import export, magnitude_pruned, mlp
from support.server import running, write_config

from sisguard.server.app import App

SLOW = os.environ.get("SISGUARD_SLOW_TESTS") == "1"
INPUT_SHAPE = (1, 8, 8)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (long load runs, long fuzzing) run only with SISGUARD_SLOW_TESTS=1."""
    if SLOW:
        return
    skip = pytest.mark.skip(reason="a longer run: set SISGUARD_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
CLASSES = 10


@pytest.fixture(scope="session")
def model_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small dense MLP on [1, 8, 8] with 10 classes and a 60%-magnitude-pruned copy."""
    d = tmp_path_factory.mktemp("pair")
    dense = mlp(INPUT_SHAPE, CLASSES, seed=0)
    return export(dense, d / "dense.onnx", INPUT_SHAPE), export(
        magnitude_pruned(dense, 0.6), d / "pruned.onnx", INPUT_SHAPE
    )


@pytest.fixture
def pair_config(tmp_path: Path, model_pair: tuple[Path, Path]) -> Path:
    dense, pruned = model_pair
    return write_config(
        tmp_path,
        [
            {
                "name": "mini",
                "dense": str(dense),
                "pruned": str(pruned),
                "output_kind": "logits",
                "class_labels": [str(i) for i in range(CLASSES)],
                "max_batch_size": 8,
            }
        ],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )


@pytest.fixture
async def app(pair_config: Path) -> AsyncIterator[App]:
    async with running(pair_config) as a:
        yield a
