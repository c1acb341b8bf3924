"""The command line as a new user meets it: a closed pipe is not an error, ``--plot`` without
matplotlib is refused before any work, and the documented client install command works."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sisguard.server.app import App

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from sisguard.client.cli import main; sys.exit(main())"
SKIP_COPY = (".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv*", "out", "report")


async def test_a_closed_pipe_is_not_an_error(app: App) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written (`| head -1` after its line)
    try:
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", CLI, "models", "--target-address", f"127.0.0.1:{app.port}"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr


def test_plot_without_matplotlib_is_refused_before_any_work(tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    x.write_bytes(b"")  # never read: the check comes first
    hide = "import sys; sys.modules['matplotlib'] = None; "
    # Nothing listens on port 1: had the command connected first, it would fail with UNAVAILABLE.
    args = ["explain", "digits", str(x), "--plot", str(tmp_path / "p.png"), "--target-address", "127.0.0.1:1"]
    proc = subprocess.run([sys.executable, "-c", hide + CLI, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--plot needs matplotlib" in proc.stderr
    assert "UNAVAILABLE" not in proc.stderr and not (tmp_path / "p.png").exists()


def test_the_documented_client_install_command_works(tmp_path: Path) -> None:
    """README and docs/client.md install the client from a checkout (`pip install .`) or from a
    wheel built from it; the wheel installs and its client imports on its own."""
    readme, client_doc = (ROOT / "README.md").read_text(), (ROOT / "docs" / "client.md").read_text()
    assert "pip install sisguard\n" not in readme + client_doc and "`pip install sisguard`" not in readme + client_doc
    assert re.search(r"python3 -m pip install \.", client_doc) and "pip wheel" in client_doc
    wheels = tmp_path / "wheels"
    # Built from a copy, so that no build/ folder is left in the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SKIP_COPY))
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    if build.returncode != 0 and "No module named" in build.stderr:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("sisguard-*.whl")
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The installed copy alone (site left out) plus this environment's dependencies.
    deps = [p for p in sys.path if p and "site-packages" in p]
    code = "import sisguard.client, sisguard.client.cli as c; print(sisguard.client.__file__); c.build_parser()"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": os.pathsep.join([str(target), *deps]), "PATH": os.environ.get("PATH", "")},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(target))


def _comparable(text: str) -> list[str]:
    """Demo lines without what changes from run to run (port, milliseconds)."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r", \d+ ms\)", ", MS)", text)
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_the_readme_demo_output_is_what_the_demo_prints() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("`sisguard demo` prints something like:", 1)[1].split("```", 2)[1]
    shown = _comparable(block)
    proc = subprocess.run(
        [sys.executable, "-c", CLI, "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SISGUARD_")},
    )
    assert proc.returncode == 0, proc.stderr
    printed = _comparable(proc.stdout)
    # The README elides rows with "..."; every line it shows is printed, in order.
    it = iter(printed)
    for line in (x for x in shown if x != "..."):
        assert any(line == p for p in it), f"README demo line not printed: {line!r}\n{proc.stdout}"
