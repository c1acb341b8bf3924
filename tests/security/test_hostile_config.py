"""Every configuration and bind failure stops ``sisguard serve`` with exit 1 and one error line
naming the problem: no traceback, no core error dump, nothing half-started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from security.conftest import PKI

SERVE = [sys.executable, "-c", "import sys; from sisguard.client.cli import main; sys.exit(main())", "serve"]


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def serve(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SISGUARD_")}
    return subprocess.run(
        [*SERVE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


def edit(config: Path, tmp: Path, change: Callable[[dict], None]) -> Path:  # type: ignore[type-arg]
    data = yaml.safe_load(config.read_text())
    change(data)
    out = tmp / "edited.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def problem_lines(stderr: str) -> list[str]:
    """Lines that are not the server's own timestamped log lines."""
    return [line for line in stderr.splitlines() if line.strip() and not line[:4].isdigit()]


def set_path(path: str, value: object) -> Callable[[dict], None]:  # type: ignore[type-arg]
    def change(d: dict) -> None:  # type: ignore[type-arg]
        *parents, last = path.split(".")
        for p in parents:
            d = d[p][0] if p == "pairs" else d.setdefault(p, {})
        d[last] = value

    return change


def cases(tmp: Path, pki: PKI, port: int) -> list[tuple[str, Callable[[dict], None], list[str], dict[str, str], str]]:  # type: ignore[type-arg]
    garbage = tmp / "garbage.npy"
    garbage.write_bytes(b"not numpy at all")
    wrong_shape = tmp / "wrong.npy"
    np.save(wrong_shape, np.zeros((3, 3), np.int32))
    empty_tokens = tmp / "tokens"
    empty_tokens.write_text("# none yet\n")
    nothing = lambda d: None  # noqa: E731
    return [
        # (what, config change, extra args, env, fragment of the one error line)
        ("gRPC port taken", nothing, ["--port", str(port)], {}, f"cannot bind port 127.0.0.1:{port}"),
        ("health port taken", set_path("health_port", port), [], {}, f"cannot bind health_port 127.0.0.1:{port}"),
        ("log level", set_path("log_level", "LOUD"), [], {}, "log_level 'LOUD' is not one of"),
        ("message size", set_path("limits.max_message_bytes", 2**32), [], {}, "less than or equal to 2147483647"),
        ("grace inf", set_path("grace_seconds", float("inf")), [], {}, "grace_seconds: Input should be a finite"),
        ("providers env", nothing, [], {"SISGUARD_RUNTIME__PROVIDERS": "cuda"}, "values are JSON"),
        ("empty tokens env", nothing, [], {"SISGUARD_TOKENS": ""}, "SISGUARD_TOKENS is set but holds no token"),
        ("empty tokens file", set_path("tokens_file", str(empty_tokens)), [], {}, "holds no token"),
        (
            "tls key mismatch",
            set_path("tls", {"cert": str(pki.server.cert), "key": str(pki.client.key)}),
            [],
            {},
            "does not belong to the certificate",
        ),
        ("group map unreadable", set_path("pairs.explain", {"group_map_file": str(garbage)}), [], {}, "cannot read"),
        ("group map shape", set_path("pairs.explain", {"group_map_file": str(wrong_shape)}), [], {}, "does not fit"),
        ("mean file missing", set_path("pairs.explain", {"mean_file": str(tmp / "nope.npy")}), [], {}, "cannot read"),
    ]


CASE_NAMES = [
    "gRPC port taken",
    "health port taken",
    "log level",
    "message size",
    "grace inf",
    "providers env",
    "empty tokens env",
    "empty tokens file",
    "tls key mismatch",
    "group map unreadable",
    "group map shape",
    "mean file missing",
]


@pytest.mark.parametrize("what", CASE_NAMES)
def test_start_up_failures_are_one_line(
    pair_config: Path, tmp_path: Path, pki: PKI, taken_port: int, what: str
) -> None:
    (_, change, args, env, fragment) = next(c for c in cases(tmp_path, pki, taken_port) if c[0] == what)
    config = edit(pair_config, tmp_path, change)
    proc = serve(config, "--port", "0", *args, env=env) if "--port" not in args else serve(config, *args, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = problem_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sisguard: error: ") and fragment in lines[0], lines[0]
