"""The prune pipeline: validate → train dense → prune ↔ retrain (and the control) → export → check → manifest.

:func:`run_prune` is what ``sisguard prune`` runs; the pieces (:func:`validate_setup`,
:func:`train_dense`, :func:`prune_and_retrain`, :func:`retrain_control`, :func:`write_pair`)
are reused by ``sisguard evaluate`` and ``sisguard family`` to build a family of pruned models
from one dense network. The control is the dense model retrained exactly like the pruned one
with nothing pruned: the yardstick for how much of a pair's divergence retraining alone causes.

Iterative pruning follows a geometric schedule: after cycle ``i`` of ``n`` the prune ratio is
``1 − (1 − r)^(i/n)``, so each cycle removes the same share of what is left, and every cycle
ends with retraining.

Example:
    >>> import tempfile
    >>> from sisguard.prune.data import load_digits
    >>> from sisguard.prune.models import digits_cnn
    >>> cfg = PruneConfig(method="ft", ratio=0.5, cycles=1, train=TrainConfig(epochs=1),
    ...                   retrain=TrainConfig(epochs=1))
    >>> manifest = run_prune(digits_cnn(), load_digits(), cfg, tempfile.mkdtemp())
    >>> abs(manifest["ratio"] - 0.5) < 0.01
    True
"""

from __future__ import annotations

import copy
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sisguard.prune.data import Dataset
from sisguard.prune.errors import DataMismatchError, PruneError
from sisguard.prune.export import DEFAULT_OPSET, check_onnx, export_onnx, make_session, run_onnx
from sisguard.prune.ft import ft_prune, max_ft_ratio
from sisguard.prune.manifest import build_manifest, write_manifest, write_pair_yaml
from sisguard.prune.measure import count_params
from sisguard.prune.pfp import pfp_prune
from sisguard.prune.sensitivity import sensitivity_inputs, sensitivity_layers
from sisguard.prune.sipp import check_selection, sipp_prune
from sisguard.prune.train import Log, TrainConfig, accuracy, train
from sisguard.prune.wt import Masks, count_nonzero, max_wt_ratio, wt_prune

METHODS = ("wt", "sipp", "ft", "pfp")
#: methods that compute sensitivities from a batch of training inputs
DATA_INFORMED = ("sipp", "pfp")
#: methods that physically remove channels (the others zero single weights under masks)
STRUCTURED = ("ft", "pfp")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune, how far, and how to (re)train."""

    method: str
    ratio: float
    cycles: int = 3
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, lr=3e-3))
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=1e-3))
    seed: int = 0
    opset: int = DEFAULT_OPSET
    #: FT only: keep channel counts at multiples of this (8 or 16 speed up CPU kernels; ratio gets coarser)
    channel_multiple: int = 1
    #: SiPP/PFP: training inputs in the sensitivity batch (drawn afresh each cycle)
    sensitivity_samples: int = 128
    #: SiPP/PFP: ``sample`` (importance sampling, the provable variant) or ``topk`` (deterministic)
    selection: str = "sample"

    def validate(self) -> None:
        """Check the options (not the model); raise :class:`PruneError` naming the bad one."""
        if self.method not in METHODS:
            raise PruneError(f"unknown prune method {self.method!r}: use one of {', '.join(METHODS)}")
        if not 0.0 < self.ratio < 1.0:
            raise PruneError(f"prune ratio must lie strictly between 0 and 1, got {self.ratio}")
        if self.cycles < 1:
            raise PruneError(f"cycles must be >= 1, got {self.cycles}")
        if self.channel_multiple < 1:
            raise PruneError(f"channel multiple must be >= 1, got {self.channel_multiple}")
        if self.opset < 17:
            raise PruneError(f"ONNX opset must be >= 17, got {self.opset}")
        if self.sensitivity_samples < 1:
            raise PruneError(f"sensitivity samples must be >= 1, got {self.sensitivity_samples}")
        check_selection(self.selection)
        self.train.validate("dense training")
        self.retrain.validate("retraining")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a run repeats exactly on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_data_fits(model: nn.Module, data: Dataset) -> None:
    """Run two training samples through ``model``; raise if shapes or class count do not fit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(data.x_train[:2]))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataMismatchError(
            f"dataset {data.name!r} with inputs of shape {list(data.input_shape)} does not fit the model: {first}"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataMismatchError(f"the model must return logits [N, classes], got {shape}")
    if out.shape[1] < data.num_classes:
        raise DataMismatchError(
            f"dataset {data.name!r} has {data.num_classes} classes but the model outputs {out.shape[1]} logits"
        )


def validate_setup(model: nn.Module, data: Dataset, config: PruneConfig) -> None:
    """All checks that can fail before training: options, data shapes, prunability, reach."""
    config.validate()
    check_data_fits(model, data)
    example = torch.from_numpy(data.x_train[:2])
    if config.method in DATA_INFORMED:
        sensitivity_inputs(data.x_train, config.sensitivity_samples, config.seed)  # enough data?
    if config.method == "sipp":
        sensitivity_layers(model)  # refuses layers SiPP has no sensitivities for
    reach = max_ft_ratio(model, example) if config.method in STRUCTURED else max_wt_ratio(model)
    if config.ratio > reach:
        raise PruneError(f"{config.method.upper()} cannot reach ratio {config.ratio} on this model "
                         f"(at most {reach:.3f})")


def train_dense(model: nn.Module, data: Dataset, config: PruneConfig, log: Log | None) -> None:
    """Train the dense network (no-op when ``config.train.epochs`` is 0, e.g. for a pretrained model)."""
    seed_everything(config.seed)
    train(model, data, config.train, seed=config.seed, log=log, label="dense")


def prune_and_retrain(dense: nn.Module, data: Dataset, config: PruneConfig,
                      log: Log | None) -> tuple[nn.Module, Masks | None]:
    """Prune a copy of ``dense`` in ``config.cycles`` prune → retrain cycles; return it (and WT masks)."""
    dense_params = count_params(dense)
    example = torch.from_numpy(data.x_train[:2])
    model = copy.deepcopy(dense)
    masks: Masks | None = None
    seed_everything(config.seed + 1)
    for cycle in range(1, config.cycles + 1):
        target = 1.0 - (1.0 - config.ratio) ** (cycle / config.cycles)
        batch = (sensitivity_inputs(data.x_train, config.sensitivity_samples, config.seed + cycle)
                 if config.method in DATA_INFORMED else example)
        if config.method == "ft":
            model = ft_prune(model, example, target, dense_params, config.channel_multiple)
        elif config.method == "pfp":
            model = pfp_prune(model, batch, target, dense_params, config.channel_multiple, config.selection,
                              seed=config.seed + cycle)
        elif config.method == "sipp":
            masks = sipp_prune(model, batch, target, dense_params, config.selection, seed=config.seed + cycle)
        else:
            masks = wt_prune(model, target, dense_params)
        reached = 1.0 - (count_params if config.method in STRUCTURED else count_nonzero)(model) / dense_params
        if log is not None:
            log(f"[{config.method}] cycle {cycle}/{config.cycles}: ratio {reached:.4f} (target {target:.4f})")
        label = f"{config.method} {cycle}/{config.cycles}"
        train(model, data, config.retrain, seed=config.seed + cycle, masks=masks, log=log, label=label)
    return model, masks


def retrain_control(dense: nn.Module, data: Dataset, config: PruneConfig, log: Log | None,
                    seed: int | None = None) -> nn.Module:
    """The control: a copy of ``dense`` retrained exactly like :func:`prune_and_retrain` with nothing pruned.

    Same cycles, retraining epochs, learning rate, schedule and per-cycle seeds (``seed + cycle``,
    ``seed`` defaulting to ``config.seed``), ratio 0. Whatever divergence from the dense model the
    control shows is what retraining alone causes; a pruned model is judged by its excess over it.
    Another ``seed`` gives a second control (the retraining noise between two controls).
    """
    seed = config.seed if seed is None else seed
    model = copy.deepcopy(dense)
    seed_everything(seed + 1)
    for cycle in range(1, config.cycles + 1):
        if log is not None:
            log(f"[control] cycle {cycle}/{config.cycles}: ratio 0 (seed {seed})")
        train(model, data, config.retrain, seed=seed + cycle, log=log, label=f"control {cycle}/{config.cycles}")
    return model


def pruned_ratio(model: nn.Module, dense_params: int) -> float:
    """``1 − nonzero(model) / dense_params`` — the prune ratio as the manifest reports it."""
    return 1.0 - count_nonzero(model) / dense_params


def write_pair(dense: nn.Module, pruned: nn.Module, data: Dataset, config: PruneConfig,
               out_dir: str | Path, name: str, model_info: dict[str, Any],
               class_labels: list[str] | None = None, log: Log | None = None,
               dense_file: Path | None = None, control: nn.Module | None = None,
               control_seed: int | None = None) -> dict[str, Any]:
    """Export the models, check them against torch, write ``manifest.json`` and ``pair.yaml``.

    ``dense_file`` is an already exported ``dense.onnx`` of ``dense`` to copy instead of
    exporting again (a family of pairs shares one dense model). ``control`` (from
    :func:`retrain_control`, made with ``control_seed``) is exported as ``control.onnx`` and
    named in the manifest and in ``pair.yaml``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checks: dict[str, float] = {}
    onnx_acc: dict[str, float] = {}
    models = {"dense.onnx": dense, "pruned.onnx": pruned}
    if control is not None:
        models["control.onnx"] = control
    else:
        (out / "control.onnx").unlink(missing_ok=True)  # a stale control of an earlier run must not stay
    for file_name, model in models.items():
        path = out / file_name
        if file_name == "dense.onnx" and dense_file is not None:
            shutil.copyfile(dense_file, path)
        else:
            export_onnx(model, data.input_shape, path, config.opset)
        checks[file_name] = check_onnx(path, model, data.x_test)
        logits = run_onnx(make_session(path), data.x_test)
        onnx_acc[file_name.removesuffix(".onnx")] = float((logits.argmax(axis=1) == data.y_test).mean())
        if log is not None:
            log(f"[export] {path}: max |onnx − torch| = {checks[file_name]:.2e}")
    labels = class_labels or [str(i) for i in range(data.num_classes)]
    torch_acc = {key: accuracy(models[f"{key}.onnx"], data.x_test, data.y_test) for key in onnx_acc}
    manifest = build_manifest(
        name=name, config=config, data=data, dense=dense, pruned=pruned, out_dir=out,
        torch_acc=torch_acc, onnx_acc=onnx_acc, checks=checks, model_info=model_info, class_labels=labels,
        control_seed=(config.seed if control_seed is None else control_seed) if control is not None else None,
    )
    write_manifest(out / "manifest.json", manifest)
    write_pair_yaml(out / "pair.yaml", manifest)
    return manifest


def run_prune(model: nn.Module, data: Dataset, config: PruneConfig, out_dir: str | Path,
              name: str | None = None, model_info: dict[str, Any] | None = None,
              class_labels: list[str] | None = None, log: Log | None = None,
              control: bool = True, control_seed: int | None = None) -> dict[str, Any]:
    """Turn ``model`` into a servable dense/pruned pair in ``out_dir``; return the manifest.

    With ``control`` (the default) the pair also gets ``control.onnx``: the dense model retrained
    like the pruned one without pruning (:func:`retrain_control`, seed ``control_seed``,
    default ``config.seed``).
    """
    validate_setup(model, data, config)
    if class_labels is not None and len(class_labels) != data.num_classes:
        raise PruneError(f"{len(class_labels)} class labels given for {data.num_classes} classes")
    if control_seed is not None and control_seed < 0:
        raise PruneError(f"control seed must be >= 0, got {control_seed}")
    train_dense(model, data, config, log)
    pruned, _ = prune_and_retrain(model, data, config, log)
    control_model = retrain_control(model, data, config, log, seed=control_seed) if control else None
    pair_name = name or Path(out_dir).resolve().name
    return write_pair(model, pruned, data, config, out_dir, pair_name, model_info or {}, class_labels, log,
                      control=control_model, control_seed=control_seed)
