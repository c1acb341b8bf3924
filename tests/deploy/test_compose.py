"""The compose stack, checked statically (no Docker engine here): with ``docker compose config``
when the compose plugin exists, and always by reading the files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
MAIN = COMPOSE / "compose.yaml"
GPU = COMPOSE / "compose.gpu.yaml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_docker_compose_config_when_available() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose is not installed here; the structure is checked below")
    for files in ([MAIN], [MAIN, GPU]):
        args = [a for f in files for a in ("-f", str(f))]
        proc = subprocess.run([docker, "compose", *args, "config", "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_stack_has_every_service_with_pinned_images() -> None:
    services = load(MAIN)["services"]
    assert set(services) == {"sisguard", "prometheus", "alertmanager", "grafana"}
    assert services["sisguard"]["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE / services["sisguard"]["build"]["context"] / "Dockerfile").exists()
    for name, svc in services.items():
        if name != "sisguard":
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", svc["image"]), f"{name}: pin the image version"


def test_published_ports_are_loopback_only() -> None:
    for name, svc in load(MAIN)["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_mounted_files_exist() -> None:
    for name, svc in load(MAIN)["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source} does not exist"


def test_sisguard_service_is_locked_down_and_configured() -> None:
    svc = load(MAIN)["services"]["sisguard"]
    assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
    assert "ALL" in svc["cap_drop"]
    assert any(v.endswith(":/etc/sisguard/config.yaml:ro") for v in svc["volumes"])
    from sisguard.server.config import load_settings

    settings = load_settings(COMPOSE / "sisguard.yaml")
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port == 9464
    grace = int(str(svc["stop_grace_period"]).rstrip("s"))
    assert grace > settings.grace_seconds


def test_prometheus_scrapes_sisguard_loads_the_rules_and_alerts_alertmanager() -> None:
    compose = load(MAIN)["services"]
    prom = load(COMPOSE / "prometheus" / "prometheus.yml")
    shared = load(ROOT / "deploy" / "prometheus" / "prometheus.yml")
    assert prom["scrape_configs"] == shared["scrape_configs"]
    assert prom["rule_files"] == shared["rule_files"] == ["alerts.yml"]
    assert any(v.endswith(":/etc/prometheus/alerts.yml:ro") for v in compose["prometheus"]["volumes"])
    (am,) = prom["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    amcfg = load(COMPOSE / "alertmanager" / "alertmanager.yml")
    assert amcfg["route"]["receiver"] in {r["name"] for r in amcfg["receivers"]}


def test_grafana_is_provisioned_from_deploy_grafana() -> None:
    grafana = load(MAIN)["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    provisioning = COMPOSE / next(k for k, v in mounts.items() if v == "/etc/grafana/provisioning")
    dashboards_dir = next(v for k, v in mounts.items() if k.endswith("grafana/dashboards"))
    provider = load(provisioning / "dashboards" / "sisguard.yml")["providers"][0]
    assert provider["options"]["path"] == dashboards_dir
    datasource = load(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_gpu_override_reserves_a_gpu() -> None:
    svc = load(GPU)["services"]["sisguard"]
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == 1
