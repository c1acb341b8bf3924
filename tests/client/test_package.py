"""The SDK as a package: light imports, strict typing, local helpers that match the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sisguard.client
from sisguard.client import Baseline, Features, InvalidInput
from sisguard.sis import features as server_features

CLIENT_DIR = Path(sisguard.client.__file__).parent
ROOT = CLIENT_DIR.parent


def test_import_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, sisguard.client, sisguard.client.plot, sisguard.client.inputs, sisguard.client.cli;"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'onnxruntime', 'torch', 'matplotlib', 'PIL', 'onnx', 'yaml', 'pydantic_settings', 'prometheus_client'});"
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == ""


def test_py_typed_ships() -> None:
    assert (CLIENT_DIR / "py.typed").exists()


def test_mypy_strict_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(CLIENT_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_surface() -> None:
    for name in sisguard.client.__all__:
        assert getattr(sisguard.client, name) is not None
    for method in ("models", "predict", "explain", "explain_stream", "health", "close"):
        assert callable(getattr(sisguard.client.Client, method))
        assert callable(getattr(sisguard.client.AsyncClient, method))


SHAPES = [(1, 8, 8), (3, 5, 7), (4, 6), (2, 1, 9)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(
    ("spec", "server"),
    [
        ("element", server_features.element_groups),
        ("pixel", server_features.pixel_groups),
        ("patch:2x2", lambda s: server_features.patch_groups(s, 2, 2)),
        ("patch:3x2", lambda s: server_features.patch_groups(s, 3, 2)),
    ],
)
def test_local_group_maps_match_the_server(shape, spec, server) -> None:
    np.testing.assert_array_equal(Features.parse(spec).group_map(shape), server(shape))


def test_explicit_map_broadcasts() -> None:
    rows = np.repeat(np.arange(4), 3).reshape(4, 3)
    np.testing.assert_array_equal(
        Features.explicit(rows).group_map((2, 4, 3)), server_features.explicit_groups(rows, (2, 4, 3))
    )
    with pytest.raises(InvalidInput):
        Features.explicit(rows).group_map((2, 5, 3))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zeros", Baseline("zeros")),
        ("mean", Baseline("mean")),
        (0.5, Baseline("constant", value=0.5)),
        (2, Baseline("constant", value=2.0)),
    ],
)
def test_baseline_coercion(value, expected) -> None:
    assert Baseline.coerce(value) == expected


def test_baseline_tensor_and_features_coercion() -> None:
    b = Baseline.coerce(np.ones((1, 2, 2)))
    assert b.kind == "tensor" and b.tensor is not None and b.tensor.shape == (1, 2, 2)
    assert Features.coerce("PIXEL") == Features.pixel()
    assert Features.coerce(Features.patches(3)) == Features("patch", patch=(3, 3))
    assert Features.coerce(np.zeros((2, 2), np.int64)).kind == "explicit"


def test_commands_of_a_missing_extra_say_what_to_install(monkeypatch, capsys) -> None:
    import importlib.util

    from sisguard.client import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert cli.main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "'serve' needs sisguard[server]" in err and "missing onnxruntime" in err
    assert cli.main(["prune", "--arch", "digits_cnn"]) == 2
    assert "'prune' needs sisguard[prune]" in capsys.readouterr().err
