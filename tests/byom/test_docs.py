"""docs/byom.md: every YAML block starts a real server over models made like the ones it names,
and each of its pairs answers Predict and Explain; the text CLI example prints what the page shows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.byom_models import TABULAR_FEATURES, ByomModels, tabular_data
from support.models import export, magnitude_pruned, mlp
from support.server import running, serving_in_thread

from sisguard.client import AsyncClient
from sisguard.client.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "byom.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def models_folder(tmp_path_factory: pytest.TempPathFactory, byom: ByomModels) -> Path:
    """The files the page's configs name, side by side."""
    d = tmp_path_factory.mktemp("byom-docs")
    for p in byom.folder.iterdir():
        if p.suffix in (".onnx", ".json", ".npy"):
            shutil.copy(p, d / p.name)
    dense = mlp((1, 8, 8), 10, seed=1)
    export(dense, d / "image_dense.onnx", (1, 8, 8))
    export(magnitude_pruned(dense, 0.5), d / "image_pruned.onnx", (1, 8, 8))
    (d / "features.txt").write_text("\n".join(TABULAR_FEATURES) + "\n")
    return d


def sample_input(name: str) -> object:
    if name == "digits":
        return np.random.default_rng(0).random((1, 8, 8), dtype=np.float32)
    if name.startswith("text"):
        ids = np.array([9, 5, 12, 40, 41, 20, 5], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)} if "passthrough" in name else {"input_ids": ids}
    return tabular_data(1, 5)[0][0]


def test_the_page_has_its_configs() -> None:
    assert len(BLOCKS) == 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
async def test_every_config_on_the_page_serves_and_explains(models_folder: Path, tmp_path: Path, index: int) -> None:
    config = models_folder / f"config-{index}.yaml"
    config.write_text(BLOCKS[index])
    names = [p["name"] for p in yaml.safe_load(BLOCKS[index])["pairs"]]
    async with running(config, port=0, metrics_port=0) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        assert sorted(p.name for p in await c.models()) == sorted(names)
        for name in names:
            x = sample_input(name)
            pred = await c.predict(name, x)
            assert pred.dense is not None and pred.dense.probabilities.shape[0] == 1
            ex = await c.explain(name, x)
            assert ex.dense is not None and ex.dense.status in ("found", "not_confident", "baseline_sufficient")


def test_the_text_cli_example_prints_the_highlighted_words(
    models_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = models_folder / "config-text.yaml"
    config.write_text(BLOCKS[1])
    with serving_in_thread(config, port=0, metrics_port=0) as app:
        code = main(
            ["explain", "text", "--text", "w9 good w12 great w20 good", "--target-address", f"127.0.0.1:{app.port}"]
        )
    out = capsys.readouterr().out
    assert code == 0
    # as the page shows it: one "good" suffices (which of the two depends on the trained weights)
    line = next(ln for ln in out.splitlines() if ln.startswith("dense   SIS 1: "))
    assert line.removeprefix("dense   SIS 1: ") in ("w9 [good] w12 great w20 good", "w9 good w12 great w20 [good]")
