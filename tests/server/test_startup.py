"""Start-up checks: a bad config or model file stops the server with one clear message and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.models import export, mlp
from support.server import write_config

from sisguard.server.config import ConfigError, load_settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.runtime.model import ModelLoadError


def pair(dense: Path, pruned: Path, **extra: object) -> dict[str, object]:
    return {"name": "p", "dense": str(dense), "pruned": str(pruned), **extra}


@pytest.fixture(scope="module")
def other_shape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(mlp((1, 4, 4), 10), tmp_path_factory.mktemp("m") / "small.onnx", (1, 4, 4))


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(mlp((1, 8, 8), 3), tmp_path_factory.mktemp("m") / "three.onnx", (1, 8, 8))


def load(tmp_path: Path, pairs: list[dict[str, object]]) -> None:
    DataPlane(load_settings(write_config(tmp_path, pairs, runtime={"providers": ["cpu"]}))).load()


def test_missing_file(tmp_path, model_pair) -> None:
    with pytest.raises(ModelLoadError, match=r"nope\.onnx: file not found"):
        load(tmp_path, [pair(model_pair[0], tmp_path / "nope.onnx")])


def test_corrupt_file(tmp_path, model_pair) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"this is not onnx" * 10)
    with pytest.raises(ModelLoadError, match=r"corrupt\.onnx: not a readable ONNX model"):
        load(tmp_path, [pair(model_pair[0], bad)])


def test_checksum_mismatch(tmp_path, model_pair) -> None:
    with pytest.raises(ModelLoadError, match="sha256 mismatch: expected 0000"):
        load(tmp_path, [pair(model_pair[0], model_pair[1], pruned_sha256="0" * 64)])


def test_signature_mismatch(tmp_path, model_pair, other_shape) -> None:
    with pytest.raises(ModelLoadError, match=r"small\.onnx: input shape \(1, 4, 4\) differs from the dense model's"):
        load(tmp_path, [pair(model_pair[0], other_shape)])


def test_class_count_mismatch(tmp_path, model_pair, three_classes) -> None:
    with pytest.raises(ModelLoadError, match="output shape"):
        load(tmp_path, [pair(model_pair[0], three_classes)])
    with pytest.raises(ModelLoadError, match="3 class labels configured, the models have 10 outputs"):
        load(tmp_path, [pair(model_pair[0], model_pair[1], class_labels=["a", "b", "c"])])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pairs: [", "not valid YAML"),
        ("- just a list", "must be a mapping"),
        ("pairs:\n  - name: 'bad name!'\n    dense: a\n    pruned: b", "pairs.0.name"),
        ("port: -4", "port"),
        ("unknown_key: 1", "unknown_key"),
    ],
)
def test_invalid_config(tmp_path, text, fragment) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(path)


def test_environment_overrides_the_file(tmp_path, model_pair, monkeypatch) -> None:
    config = write_config(tmp_path, [pair(*model_pair)])
    monkeypatch.setenv("SISGUARD_PORT", "6123")
    monkeypatch.setenv("SISGUARD_LIMITS__MAX_BATCH_ROWS", "7")
    settings = load_settings(config)
    assert settings.port == 6123 and settings.limits.max_batch_rows == 7


def test_serve_exits_nonzero_with_one_line(tmp_path, model_pair) -> None:
    config = write_config(tmp_path, [pair(model_pair[0], tmp_path / "gone.onnx")])
    proc = subprocess.run(
        [sys.executable, "-m", "sisguard.client.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"sisguard: error: {tmp_path / 'gone.onnx'}: file not found"]
