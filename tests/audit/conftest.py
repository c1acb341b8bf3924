from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from sisguard.audit.options import AuditOptions
from sisguard.audit.runner import run_audit
from sisguard.audit.store import AuditStore

#: a few inputs keep the audit tests fast; chunks of two make several shards
INPUTS = 6
CHUNK = 2


def bundled_samples() -> Path:
    return Path(str(resources.files("sisguard.server") / "models/digits/samples.npz"))


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first inputs of the bundled digits samples, with labels."""
    with np.load(bundled_samples()) as f:
        x, y = f["x"][:INPUTS], f["y"][:INPUTS]
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=x, y=y)
    return path


def options(dataset: Path, out: Path, **kw: object) -> AuditOptions:
    kw.setdefault("chunk_size", CHUNK)
    return AuditOptions(dataset=dataset, out=out, progress=False, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def make_options():  # type: ignore[no-untyped-def]
    """``make_options(dataset, out, **overrides)``: the options of the test audits."""
    return options


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, digits_npz: Path):  # type: ignore[no-untyped-def]
    """An uninterrupted audit by one local worker: what every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "audit"
    run_audit(options(digits_npz, out, workers=1))
    return AuditStore(out).read()
