"""The manifest (``manifest.json``) and the server-config pair block (``pair.yaml``) of a pair.

The manifest records how the pair was made and what it is: method, target and reached
prune ratio, parameters, FLOPs, accuracies (torch and ONNX Runtime) of the dense, pruned and
(when made) control model, file sizes and SHA-256, seeds, training settings and library
versions. The pair block is one list item
of the server config's ``pairs:`` with paths relative to the config file that includes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from sisguard.prune.data import Dataset
from sisguard.prune.export import INPUT_NAME, OUTPUT_NAME, sha256_file
from sisguard.prune.measure import count_flops, count_params
from sisguard.prune.wt import count_nonzero

if TYPE_CHECKING:
    from sisguard.prune.pipeline import PruneConfig

MANIFEST_VERSION = 1


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def build_manifest(*, name: str, config: PruneConfig, data: Dataset, dense: nn.Module, pruned: nn.Module,
                   out_dir: Path, torch_acc: dict[str, float], onnx_acc: dict[str, float],
                   checks: dict[str, float], model_info: dict[str, Any],
                   class_labels: list[str], control_seed: int | None = None) -> dict[str, Any]:
    """Collect everything a reader needs to trust and reproduce the pair.

    ``checks`` names the exported files (``dense.onnx``, ``pruned.onnx`` and, when the pair has
    a control, ``control.onnx``, retrained with ``control_seed``).
    """
    dense_params = count_params(dense)
    files = {}
    for file_name in checks:
        path = out_dir / file_name
        files[file_name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size,
                            "max_abs_diff_vs_torch": checks[file_name]}
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "method": config.method,
        "target_ratio": config.ratio,
        "ratio": 1.0 - count_nonzero(pruned) / dense_params,
        "seed": config.seed,
        "model": model_info,
        "data": {"name": data.name, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
                 "n_train": len(data.x_train), "n_test": len(data.x_test)},
        "channel_multiple": config.channel_multiple,
        "sensitivity": {"samples": config.sensitivity_samples, "selection": config.selection}
        if config.method in ("sipp", "pfp") else None,
        "training": {"cycles": config.cycles, "dense": asdict(config.train), "retrain": asdict(config.retrain)},
        "params": {"dense": dense_params, "pruned": count_params(pruned), "pruned_nonzero": count_nonzero(pruned)},
        "flops": {"dense": count_flops(dense, data.input_shape), "pruned": count_flops(pruned, data.input_shape)},
        "accuracy": {key: {"torch": torch_acc[key], "onnx": onnx_acc[key]} for key in onnx_acc},
        "control": None if "control.onnx" not in files else {
            "file": "control.onnx", "seed": control_seed, "ratio": 0.0,
            "training": "the dense model retrained like the pruned one (same cycles, epochs, lr, schedule, "
                        "per-cycle seeds), nothing pruned"},
        "files": files,
        "onnx": {"opset": config.opset,
                 "input": {"name": INPUT_NAME, "shape": ["N", *data.input_shape], "dtype": "float32"},
                 "output": {"name": OUTPUT_NAME, "shape": ["N", data.num_classes], "dtype": "float32",
                            "kind": "logits"}},
        "class_labels": class_labels,
        "versions": _versions(),
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as indented JSON."""
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a ``manifest.json`` (or the one inside a pair directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def pair_block(manifest: dict[str, Any]) -> str:
    """The YAML list item to paste under ``pairs:`` in the server config."""
    labels = ", ".join(json.dumps(label) for label in manifest["class_labels"])
    files = manifest["files"]
    control = ("  control: control.onnx      # the dense model retrained without pruning\n"
               if "control.onnx" in files else "")
    control_sha = f"  control_sha256: {files['control.onnx']['sha256']}\n" if "control.onnx" in files else ""
    return (
        f"- name: {manifest['name']}\n"
        "  dense: dense.onnx          # path relative to the config file that includes it\n"
        "  pruned: pruned.onnx\n"
        f"{control}"
        f"  dense_sha256: {files['dense.onnx']['sha256']}\n"
        f"  pruned_sha256: {files['pruned.onnx']['sha256']}\n"
        f"{control_sha}"
        "  output_kind: logits\n"
        f"  class_labels: [{labels}]\n"
    )


def write_pair_yaml(path: Path, manifest: dict[str, Any]) -> None:
    """Write :func:`pair_block` of ``manifest`` to ``path``."""
    path.write_text(pair_block(manifest))
