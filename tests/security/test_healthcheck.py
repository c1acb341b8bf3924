"""``python -m sisguard.server.healthcheck`` (the Docker HEALTHCHECK) against live servers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from support.server import running


async def healthcheck(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sisguard.server.healthcheck", "--config", str(config), "--timeout", "10", *args]
    return await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


async def test_plaintext_main_port(pair_config: Path) -> None:
    async with running(pair_config) as app:
        proc = await healthcheck(pair_config, SISGUARD_PORT=str(app.port))
    assert proc.returncode == 0, proc.stderr
    assert "SERVING" in proc.stdout


async def test_health_port_is_preferred_and_needs_no_tls(pair_config: Path, pki) -> None:
    tls = {"cert": pki.server.cert, "key": pki.server.key, "client_ca": pki.ca}
    async with running(pair_config, tls=tls, health_port=0) as app:
        proc = await healthcheck(
            pair_config,
            SISGUARD_PORT=str(app.port),
            SISGUARD_HEALTH_PORT=str(app.health_port),
            SISGUARD_TLS__CERT=str(pki.server.cert),
            SISGUARD_TLS__KEY=str(pki.server.key),
        )
    assert proc.returncode == 0, proc.stderr
    assert f":{app.health_port}: SERVING" in proc.stdout


async def test_tls_main_port_with_ca_and_client_certificate(pair_config: Path, pki) -> None:
    tls = {"cert": pki.server.cert, "key": pki.server.key, "client_ca": pki.ca}
    env = {"SISGUARD_TLS__CERT": str(pki.server.cert), "SISGUARD_TLS__KEY": str(pki.server.key)}
    async with running(pair_config, tls=tls) as app:
        env["SISGUARD_PORT"] = str(app.port)
        ok = await healthcheck(
            pair_config,
            "--ca",
            str(pki.ca),
            "--client-cert",
            str(pki.client.cert),
            "--client-key",
            str(pki.client.key),
            **env,
        )
        no_client_cert = await healthcheck(pair_config, "--ca", str(pki.ca), **env)
    assert ok.returncode == 0, ok.stderr
    assert no_client_cert.returncode == 1
    assert no_client_cert.stderr.startswith("unhealthy:")


async def test_nothing_listening_is_unhealthy(pair_config: Path) -> None:
    proc = await healthcheck(pair_config, "--address", "127.0.0.1:1", "--timeout", "2")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "UNAVAILABLE" in proc.stderr
