"""KServe manifests: the ServingRuntimes and InferenceServices validate against KServe's published
CRD schemas (deploy/kserve/crds, offline), strictly (an unknown field fails, as ``kubectl apply
--validate=strict`` would), and hang together the way KServe's controller reads them."""

from __future__ import annotations

import copy
import gzip
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KSERVE = ROOT / "deploy" / "kserve"
RUNTIMES = {"cpu": KSERVE / "servingruntime-cpu.yaml", "gpu": KSERVE / "servingruntime-gpu.yaml"}
SERVICES = [KSERVE / "inferenceservice.yaml", KSERVE / "inferenceservice-gpu.yaml"]


def crd_schema(plural: str) -> dict[str, Any]:
    with gzip.open(KSERVE / "crds" / f"serving.kserve.io_{plural}.yaml.gz", "rt") as fh:
        crd = yaml.safe_load(fh)
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    return strict(version["schema"]["openAPIV3Schema"])


def strict(schema: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema that refuses unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


SCHEMAS = {"ServingRuntime": crd_schema("servingruntimes"), "InferenceService": crd_schema("inferenceservices")}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMAS[doc["kind"]])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("path", [*RUNTIMES.values(), *SERVICES], ids=lambda p: p.name)
def test_manifest_validates_against_the_kserve_crd(path: Path) -> None:
    doc = load(path)
    assert doc["apiVersion"] == {"ServingRuntime": "serving.kserve.io/v1alpha1"}.get(
        doc["kind"], "serving.kserve.io/v1beta1"
    )
    assert errors(doc) == []


def test_the_strict_schema_refuses_a_misspelt_field() -> None:
    doc = load(RUNTIMES["cpu"])
    bad = copy.deepcopy(doc)
    bad["spec"]["protocolVersion"] = ["grpc-v2"]  # the field is protocolVersions
    assert any("protocolVersion" in e for e in errors(bad))
    bad = copy.deepcopy(doc)
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = "50051"
    assert any("containerPort" in e for e in errors(bad))


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_runtime_ports_probes_and_metrics_agree(variant: str) -> None:
    spec = load(RUNTIMES[variant])["spec"]
    assert spec["protocolVersions"] == ["grpc-v2"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"  # the container KServe fills in
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    first = container["ports"][0]["name"]
    assert "h2c" in first or "grpc" in first  # KServe marks the Service port HTTP/2 by this name
    env = _env(container)
    assert int(env["SISGUARD_PORT"]) == container["ports"][0]["containerPort"]
    assert int(env["SISGUARD_HEALTH_PORT"]) == ports["grpc-health"]
    assert (
        int(env["SISGUARD_METRICS_PORT"]) == ports["metrics"] == int(spec["annotations"]["prometheus.kserve.io/port"])
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc-health"]
    assert container["args"][-1].startswith("/mnt/models/")  # where the storage initializer puts the model
    gpus = container["resources"]["limits"].get("nvidia.com/gpu")
    providers = yaml.safe_load(env["SISGUARD_RUNTIME__PROVIDERS"])
    if variant == "gpu":
        assert gpus == "1" and providers[0] == "cuda"
    else:
        assert gpus is None and providers == ["cpu"]


def test_inference_services_name_a_runtime_that_serves_their_format() -> None:
    runtimes = {load(p)["metadata"]["name"]: load(p)["spec"] for p in RUNTIMES.values()}
    for path in SERVICES:
        model = load(path)["spec"]["predictor"]["model"]
        runtime = runtimes[model["runtime"]]
        assert model["protocolVersion"] in runtime["protocolVersions"]
        formats = {(f["name"], f.get("version")) for f in runtime["supportedModelFormats"]}
        assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats


def test_model_folder_config_loads_with_the_runtime_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model folder laid out as docs/kserve.md says (config.yaml next to the ONNX files), read
    with the ServingRuntime's SISGUARD_* variables set: the ports and providers KServe expects."""
    from sisguard.server.config import load_settings

    bundled = ROOT / "server" / "models" / "digits"
    for name in ("dense.onnx", "pruned.onnx", "control.onnx"):
        shutil.copy(bundled / name, tmp_path / name)
    shutil.copy(KSERVE / "model-config.yaml", tmp_path / "config.yaml")
    container = load(RUNTIMES["gpu"])["spec"]["containers"][0]
    for key, value in _env(container).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(tmp_path / "config.yaml")
    assert (settings.host, settings.port, settings.health_port, settings.metrics_port) == (
        "0.0.0.0",
        50051,
        50052,
        9464,
    )
    assert settings.runtime.providers == ["cuda", "cpu"]
    (pair,) = settings.pairs
    assert pair.dense == (tmp_path / "dense.onnx").resolve() and pair.control is not None
