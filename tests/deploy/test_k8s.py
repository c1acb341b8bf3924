"""Kubernetes manifests: every file and every overlay's kustomize output validates with
kubernetes-validate; Prometheus Operator resources (no schema there) are checked by hand."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("cpu", "gpu")
VERSION = kubernetes_validate.latest_version()
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
NOT_MANIFESTS = {"kustomization.yaml", "config.yaml"}


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] in CRD_KINDS:
        check_crd(doc)
    else:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def check_crd(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["metadata"]["name"]
    if doc["kind"] == "ServiceMonitor":
        service = docs((BASE / "service.yaml").read_text())[0]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for ep in doc["spec"]["endpoints"]:
            assert ep["port"] in ports
        assert doc["spec"]["selector"]["matchLabels"]
    else:
        for group in doc["spec"]["groups"]:
            assert group["name"] and group["rules"]
            for rule in group["rules"]:
                assert rule.get("alert") or rule.get("record")
                assert rule["expr"]


MANIFESTS = sorted(
    p for p in K8S.rglob("*.yaml") if p.name not in NOT_MANIFESTS and p.parent.parent != K8S / "overlays"
)


@pytest.mark.parametrize("path", MANIFESTS, ids=[str(p.relative_to(K8S)) for p in MANIFESTS])
def test_each_manifest_validates(path: Path) -> None:
    for doc in docs(path.read_text()):
        validate(doc)


def kustomize(overlay: str) -> list[dict[str, Any]]:
    target = str(K8S / "overlays" / overlay)
    for cmd in (["kubectl", "kustomize", target], ["kustomize", "build", target]):
        if shutil.which(cmd[0]):
            return docs(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    pytest.skip("neither kubectl nor kustomize is installed: the files themselves are validated above")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_validates(overlay: str) -> None:
    built = kustomize(overlay)
    kinds = sorted(d["kind"] for d in built)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "Service",
            "ServiceMonitor",
        ]
    )
    for doc in built:
        validate(doc)
    deployment = next(d for d in built if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Native gRPC probes on the health port, which the config enables.
    config = yaml.safe_load(next(d for d in built if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == config["health_port"]
    assert {p["containerPort"] for p in container["ports"]} == {
        config["port"],
        config["health_port"],
        config["metrics_port"],
    }
    assert config["host"] == "0.0.0.0" and config["metrics_host"] == "0.0.0.0"
    # Non-root, read-only root filesystem, nothing extra.
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    # Shutdown fits: preStop sleep + grace_seconds < terminationGracePeriodSeconds.
    assert (
        container["lifecycle"]["preStop"]["sleep"]["seconds"] + config["grace_seconds"]
        < pod["terminationGracePeriodSeconds"]
    )
    # The ConfigMap mounted is the generated one (hash suffix).
    cm_name = next(d for d in built if d["kind"] == "ConfigMap")["metadata"]["name"]
    assert any(v.get("configMap", {}).get("name") == cm_name for v in pod["volumes"])
    gpu = container["resources"]["limits"].get("nvidia.com/gpu")
    assert (gpu == "1") == (overlay == "gpu")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert yaml.safe_load(env["SISGUARD_RUNTIME__PROVIDERS"]) == (["cpu"] if overlay == "cpu" else ["cuda", "cpu"])
    services = {d["metadata"]["name"]: d for d in built if d["kind"] == "Service"}
    assert services["sisguard-headless"]["spec"]["clusterIP"] == "None"


def test_config_in_the_configmap_loads(tmp_path: Path) -> None:
    from sisguard.server.config import load_settings

    settings = load_settings(BASE / "config.yaml")
    assert settings.health_port == 50052 and settings.pairs[0].name == "digits"


def test_prometheus_rule_matches_the_alert_rules() -> None:
    """The PrometheusRule is generated from deploy/prometheus/alerts.yml; they must not drift."""
    rule = docs((BASE / "prometheusrule.yaml").read_text())[0]
    source = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"], "run: python deploy/k8s/sync_rules.py"
