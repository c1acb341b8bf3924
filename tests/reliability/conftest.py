from __future__ import annotations

from pathlib import Path

import pytest
from reliability.faulty import faulty_model


@pytest.fixture(scope="session")
def faulty_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return faulty_model(tmp_path_factory.mktemp("faulty") / "faulty.onnx")
