"""A real sisguard server on a free loopback port, for integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from sisguard.server.app import App
from sisguard.server.config import load_settings


def write_config(tmp: Path, pairs: list[dict[str, Any]], **top: Any) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({"host": "127.0.0.1", "port": 0, "metrics_port": None, "pairs": pairs, **top}))
    return path


@contextlib.asynccontextmanager
async def running(config: Path, **overrides: Any) -> AsyncIterator[App]:
    """Start the app from ``config`` on a free port; stop it afterwards."""
    app = App(load_settings(config, **overrides))
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0.5)
