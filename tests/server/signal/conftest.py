"""Models whose damage is known: a dense MLP, an identical copy, and a copy that breaks off a grid."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))


@pytest.fixture(scope="session")
def signal_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from conftest import export_models  # tests/server/monitoring/conftest.py: dense + NoiseFragile

    d = tmp_path_factory.mktemp("signal-models")
    models = export_models(d)
    models["copy"] = d / "copy.onnx"
    shutil.copyfile(models["dense"], models["copy"])
    return models
