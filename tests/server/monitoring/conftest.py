"""Models and a data plane with metrics, shadow explanations and noise probes, without the gRPC layer."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry
from support.models import export, mlp
from support.server import write_config
from torch import nn

from sisguard.server.background.probes import NoiseProbes
from sisguard.server.background.shadow import ShadowExplanations
from sisguard.server.config import load_settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.metrics import Metrics

INPUT_SHAPE = (1, 8, 8)
CLASSES = 10


class NoiseFragile(nn.Module):
    """``dense`` on inputs whose elements are multiples of 0.25; off that grid the top class is pushed down.

    A stand-in for a pruned model that agrees on clean inputs and not under noise: the logit of the
    dense model's top class drops by ``strength * sum |x - round(4x)/4|``.
    """

    def __init__(self, dense: nn.Module, strength: float = 100.0) -> None:
        super().__init__()
        self.dense = dense
        self.strength = strength

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.dense(x)
        off_grid = (x - torch.round(x * 4.0) / 4.0).abs().flatten(1).sum(dim=1, keepdim=True)
        top = (z == z.max(dim=1, keepdim=True).values).to(z.dtype)
        return z - self.strength * off_grid * top


def grid_rows(n: int, seed: int = 0) -> np.ndarray:
    """Clean rows: every element a multiple of 0.25 in [0, 1]."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 5, size=(n, *INPUT_SHAPE)) / 4.0).astype(np.float32)


def export_models(directory: Path) -> dict[str, Path]:
    dense = mlp(INPUT_SHAPE, CLASSES, seed=0)
    return {
        "dense": export(dense, directory / "dense.onnx", INPUT_SHAPE),
        "fragile": export(NoiseFragile(dense), directory / "fragile.onnx", INPUT_SHAPE),
    }


def pair(name: str, dense: Path, pruned: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "dense": str(dense),
        "pruned": str(pruned),
        "output_kind": "logits",
        "max_batch_size": 8,
        "explain": {"threshold": 0.9, "threshold_relative": True},
        **extra,
    }


class Monitored:
    """A started data plane with its metrics registry, shadow explanations and noise probes."""

    def __init__(
        self, service: DataPlane, registry: CollectorRegistry, shadow: ShadowExplanations, probes: NoiseProbes
    ) -> None:
        self.service, self.registry, self.shadow, self.probes = service, registry, shadow, probes

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def monitored_service(tmp: Path, pairs: list[dict[str, Any]], seed: int = 0) -> AsyncIterator[Monitored]:
    settings = load_settings(write_config(tmp, pairs, runtime={"providers": ["cpu"], "intra_op_threads": 1}))
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    service = DataPlane(settings, observer=metrics)
    service.load()
    service.start()
    rng = np.random.default_rng(seed)
    shadow = ShadowExplanations(service, metrics.shadow_observer, rng=rng)
    probes = NoiseProbes(service, metrics.noise_probe_observer, rng=rng)
    service.predict_listeners += [shadow.rows_predicted, probes.rows_predicted]
    shadow.start()
    probes.start()
    try:
        yield Monitored(service, registry, shadow, probes)
    finally:
        await shadow.close()
        await probes.close()
        await service.close()


class Kit:
    """The helpers above, handed to tests as a fixture (test modules here are not importable packages)."""

    grid_rows = staticmethod(grid_rows)
    pair = staticmethod(pair)
    monitored_service = staticmethod(monitored_service)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export_models(tmp_path_factory.mktemp("monitoring-models"))


# -- Prometheus binaries (Debian package "prometheus") ---------------------------------------------

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"


def _install_prometheus() -> str:
    """Install Debian's prometheus package (prometheus + promtool); returns why it failed, or ""."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return "not root and no sudo"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "prometheus"], None):
        if cmd is None:  # the package lists may be missing or stale: refresh once and retry
            subprocess.run([*sudo, "apt-get", "update"], env=env, capture_output=True, timeout=300, check=False)
            cmd = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
        try:
            done = subprocess.run([*sudo, *cmd], env=env, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"apt-get failed: {exc}"
        if done.returncode == 0 and shutil.which("prometheus") and shutil.which("promtool"):
            return ""
    return f"apt-get install prometheus failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def prometheus_tools() -> dict[str, str]:
    """Paths of ``prometheus`` and ``promtool``, installing the Debian package when missing.

    Skips (with the reason) only where it cannot be installed. The Debian service the package may
    start is never used: tests run their own binary on a temporary config and storage.
    """
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        why = _install_prometheus()
        if why:
            pytest.skip(
                f"Prometheus is not installed and cannot be installed here ({why}); "
                "install the Debian package 'prometheus' to run this test"
            )
    return {"prometheus": shutil.which("prometheus") or "", "promtool": shutil.which("promtool") or ""}
