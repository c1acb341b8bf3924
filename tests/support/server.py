"""A real sisguard server on a free loopback port, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
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


@contextlib.contextmanager
def serving_in_thread(config: Path, **overrides: Any) -> Iterator[App]:
    """The app from ``config`` served by a thread with its own event loop, for blocking clients
    (the CLI, ``Client``); yields once the models are loaded and the port is bound."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        app = App(load_settings(config, **overrides))
        try:
            await app.start()
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            return
        holder["app"], holder["loop"], holder["stop"] = app, asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await holder["stop"].wait()
        await app.stop(grace=0.2)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(120):
        raise RuntimeError("server did not start within 120 s")
    if "error" in holder:
        raise holder["error"]
    try:
        yield holder["app"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
