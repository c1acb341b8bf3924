"""Bring-your-own-model fixtures: the models are trained once and cached (keyed by the builders'
source) in pytest's cache folder; each test writes its own config next to copies-by-path."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.byom_models import ByomModels, build_all, source_key
from support.byom_pairs import sklearn_pair, tabular_pair, text_pair
from support.server import write_config


@pytest.fixture(scope="session")
def byom(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ByomModels:
    cache = getattr(request.config, "cache", None)
    folder = (
        Path(cache.mkdir(f"byom-models-{source_key()}"))
        if cache is not None
        else tmp_path_factory.mktemp("byom-models")
    )
    return build_all(folder)


@pytest.fixture
def byom_config(tmp_path: Path, byom: ByomModels) -> Path:
    """The text, tabular and scikit-learn pairs in one config."""
    return write_config(
        tmp_path,
        [text_pair(byom), tabular_pair(byom), sklearn_pair(byom, tmp_path)],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )
