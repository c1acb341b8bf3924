"""``sisguard serve`` in a child process on a free loopback port, for the reliability tests."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVE = [sys.executable, "-c", "import sys; from sisguard.client.cli import main; sys.exit(main())", "serve"]
_BOUND = re.compile(r"serving on [^\s]+:(\d+)")


class ServerProcess:
    """A running ``sisguard serve``; its stderr is collected on a thread."""

    def __init__(self, config: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*SERVE, "--config", str(config), "--port", "0", "--log-level", "INFO", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._bound = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = _BOUND.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._bound.set()
        self._bound.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self, timeout: float = 120.0) -> None:
        if not self._bound.wait(timeout) or self.port is None:
            raise RuntimeError(f"server did not start (exit {self.proc.poll()}):\n{self.stderr}")
        with grpc.insecure_channel(self.address) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"server not SERVING: {status}")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def serving(config: Path, *extra: str) -> Iterator[ServerProcess]:
    server = ServerProcess(config, *extra)
    try:
        server.wait_serving()
        yield server
    finally:
        server.stop()


def wait_exit(server: ServerProcess, timeout: float) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            return server.proc.returncode
        time.sleep(0.05)
    return None
