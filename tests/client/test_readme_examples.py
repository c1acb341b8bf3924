"""The ```python blocks of README.md and docs/client.md run against a live server of the default
pair. Blocks of one file share a namespace, in order, like a notebook; a block preceded by
``<!-- no-test -->`` is skipped. The documented address 127.0.0.1:50051 is pointed at the test
server's free port."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "client.md"]
DOCUMENTED_ADDRESS = "127.0.0.1:50051"
_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every python block not marked ``<!-- no-test -->``."""
    blocks = []
    for m in _BLOCK.finditer(text):
        if "<!-- no-test -->" in m.group("before"):
            continue
        blocks.append((text.count("\n", 0, m.start("code")) + 1, m.group("code")))
    return blocks


def test_block_extraction_honours_no_test() -> None:
    text = "intro\n```python\na = 1\n```\n<!-- no-test -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "a = 1")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_run(doc: Path, digits_server, tmp_path: Path) -> None:
    if not doc.exists():
        pytest.skip(f"{doc.name} does not exist yet")
    blocks = python_blocks(doc.read_text())
    if not blocks:
        pytest.skip(f"{doc.name} has no python blocks")
    namespace: dict[str, object] = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)  # files an example writes land in the test's directory
    try:
        for line, code in blocks:
            source = code.replace(DOCUMENTED_ADDRESS, digits_server.address)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(source, f"{doc.name}:{line}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{doc.name} block at line {line} failed: {exc!r}\n--- output ---\n{out.getvalue()}")
    finally:
        os.chdir(cwd)
