"""A model family with ground truth, to validate the divergence signal against.

:func:`make_family` trains one dense model, two controls (the dense model retrained like a
pruned one with nothing pruned, retraining seeds ``control_seeds``) and one pruned model per
(method, ratio), exports them all as ONNX into one directory, measures every model's error on
a held-out split under a few shifts, and writes the ground truth:

=====================  =====================================================================
file                   content
=====================  =====================================================================
``dense.onnx``         the dense model (seed ``seed``)
``control.onnx``       control, retraining seed ``control_seeds[0]`` (the pruned models' seed)
``control2.onnx``      second control, retraining seed ``control_seeds[1]``
``<m>_<r>.onnx``       pruned models, e.g. ``wt_0.7.onnx``, ``ft_0.95.onnx``
``family.yaml``        server config: one pair per pruned model and ``control2``, each with
                       ``dense.onnx`` and ``control.onnx``; paths relative to the file
``ground_truth.json``  per model: accuracy, error per shift, excess error over the dense model
                       and over the control with standard errors, worst shift, label
``ground_truth.md``    the same as a table
``data.npz``           the split used (``x_train, y_train, x_test, y_test``; test = held out)
``family.json``        configuration, its hashes, every file's sha256 (the cache key)
``dense.pt``           the dense model's torch weights (to resume an interrupted build)
=====================  =====================================================================

**Labels** follow *Lost in Pruning* with the excess error measured against the **dense**
model: the model's error under a shift minus the dense model's error under the same shift,
in percentage points. ``damaged``: ≥ ``damaged_pp`` (2) under some shift; ``healthy``:
≤ ``healthy_pp`` (0.5) under every shift; otherwise ``grey``. ``clean_within_tolerance`` says
whether the clean accuracy is within ``clean_tolerance_pp`` (0.5) of the dense model's. The
paper's other reading of excess error — how much more the error *grows* from clean to shift —
is reported beside (``growth_over_dense_pp``) but does not set the label.

Every difference comes with its paired standard error over the held-out images (noise shifts
are averaged over ``noise_draws`` draws per image first); ``label_robust`` says whether the
label survives moving every excess by one standard error. On digits' ~800 held-out images one
standard error of a difference is 0.1–1.4 points (largest under brightness), so labels near
the thresholds are noisy — the controls' own excess errors (``control``, and ``control2``
against ``control``) show how large that retraining noise is. ``label_vs_control`` applies the
same rule to the excess over the control (beside the ground truth, not instead of it).

Re-running with the same configuration reuses what exists (``family.json`` holds the hash of
the fields that decide the models and of the whole configuration; a model is reused while its
file has the recorded sha256); other shifts or thresholds only re-measure the ground truth;
other model fields in the same directory start over.

Example:
    >>> cfg = FamilyConfig.preset("quick")
    >>> cfg.ratios, cfg.cycles
    ((0.5, 0.7, 0.9), 2)
    >>> gt = make_family(cfg, "bench/.cache/signal/digits_cnn-digits-quick")   # doctest: +SKIP
    >>> gt["models"]["ft_0.7"]["clean_within_tolerance"]                         # doctest: +SKIP
    False
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sisguard.prune.data import Dataset, synthetic32
from sisguard.prune.errors import PruneError
from sisguard.prune.export import check_onnx, export_onnx, make_session, run_onnx, sha256_file
from sisguard.prune.measure import count_params
from sisguard.prune.pipeline import (
    METHODS,
    PruneConfig,
    prune_and_retrain,
    retrain_control,
    seed_everything,
    train_dense,
    validate_setup,
)
from sisguard.prune.shifts import Shift, apply_shift, parse_shift
from sisguard.prune.train import Log, TrainConfig
from sisguard.prune.wt import count_nonzero

#: bumped when the layout of the models changes (part of the models' cache key)
FAMILY_FORMAT = 1
#: bumped when the ground truth's fields or their meaning change (recomputed, models kept)
GROUND_TRUTH_FORMAT = 2
#: the fields that decide the models; the others (shifts, thresholds) only the ground truth
MODEL_FIELDS = ("arch", "data", "width", "n_train", "synthetic_n", "synthetic_test_fraction", "methods", "ratios",
                "cycles", "train", "retrain", "seed", "control_seeds", "opset", "channel_multiple")

Mode = Literal["full", "quick"]


class FamilyConfig(BaseModel):
    """What family to build and how to label it (the hash of this is the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field("digits_cnn", description="built-in architecture (digits_cnn, resnet_cifar, …)")
    data: Literal["digits", "synthetic32"] = "digits"
    width: int | None = Field(None, ge=1, description="channel width of the architecture (its default if None)")
    n_train: int = Field(1000, ge=50, description="digits: training images; the other ~800 are held out")
    synthetic_n: int = Field(3000, ge=100, description="synthetic32: images in all")
    synthetic_test_fraction: float = Field(0.4, gt=0.0, lt=1.0, description="synthetic32: share held out")
    methods: tuple[str, ...] = ("wt", "ft")
    ratios: tuple[float, ...] = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
    cycles: int = Field(3, ge=1)
    train: TrainConfig = TrainConfig(epochs=30, lr=3e-3)
    retrain: TrainConfig = TrainConfig(epochs=10, lr=1e-3)
    seed: int = Field(0, ge=0, description="seed of the dense model and of the pruned models' retraining")
    control_seeds: tuple[int, int] = (0, 1)
    shifts: tuple[str, ...] = ("uniform-0.3", "gaussian-0.1", "brightness-0.3", "contrast-0.5", "blur-0.8")
    noise_draws: int = Field(4, ge=1, le=64, description="draws per image of the noise shifts")
    damaged_pp: float = Field(2.0, gt=0.0)
    healthy_pp: float = Field(0.5, ge=0.0)
    clean_tolerance_pp: float = Field(0.5, ge=0.0)
    opset: int = Field(18, ge=17)
    channel_multiple: int = Field(1, ge=1)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        from sisguard.prune.models import builtin_architectures

        if v not in builtin_architectures():
            raise ValueError(f"unknown architecture {v!r}: use one of {', '.join(builtin_architectures())}")
        return v

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("give at least one prune method")
        for method in v:
            if method not in METHODS:
                raise ValueError(f"unknown prune method {method!r}: use one of {', '.join(METHODS)}")
        return tuple(dict.fromkeys(v))

    @field_validator("ratios")
    @classmethod
    def _valid_ratios(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one prune ratio")
        for ratio in v:
            if not 0.0 < ratio < 1.0:
                raise ValueError(f"prune ratio must lie strictly between 0 and 1, got {ratio}")
        return tuple(sorted(set(v)))

    @field_validator("shifts")
    @classmethod
    def _valid_shifts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("give at least one shift")
        for spec in v:
            try:
                shift = parse_shift(spec)
            except PruneError as exc:
                raise ValueError(str(exc)) from exc
            if shift.kind == "clean":
                raise ValueError("clean is always evaluated; list only shifts")
        return tuple(dict.fromkeys(v))

    @field_validator("control_seeds")
    @classmethod
    def _distinct_controls(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] == v[1] or min(v) < 0:
            raise ValueError(f"the two control seeds must be distinct and >= 0, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FamilyConfig:
        if self.healthy_pp >= self.damaged_pp:
            raise ValueError(f"healthy_pp ({self.healthy_pp}) must be below damaged_pp ({self.damaged_pp})")
        self.train.validate("dense training")
        self.retrain.validate("retraining")
        return self

    @classmethod
    def preset(cls, mode: Mode = "full", **overrides: Any) -> FamilyConfig:
        """The full family (WT/FT at 0.3 … 0.95, 3 cycles × 10 epochs) or a quick one for CI-sized runs.

        ``quick``: ratios 0.5, 0.7, 0.9, 2 cycles × 4 retraining epochs, 20 dense epochs.
        ``overrides`` set any field (e.g. ``arch="resnet_cifar", data="synthetic32"``).
        """
        if mode not in ("full", "quick"):
            raise PruneError(f"family mode must be full or quick, got {mode!r}")
        base: dict[str, Any] = {}
        if mode == "quick":
            base = {"ratios": (0.5, 0.7, 0.9), "cycles": 2, "train": TrainConfig(epochs=20, lr=3e-3),
                    "retrain": TrainConfig(epochs=4, lr=1e-3)}
        return make_config(**{**base, **overrides})

    def config_hash(self) -> str:
        """SHA-256 of the whole configuration and both formats (the ground truth's cache key)."""
        text = json.dumps({"format": FAMILY_FORMAT, "ground_truth_format": GROUND_TRUTH_FORMAT,
                           "config": self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def models_hash(self) -> str:
        """SHA-256 of the fields that decide the models (their cache key): shifts and thresholds are not among them."""
        fields = self.model_dump(mode="json", include=set(MODEL_FIELDS))
        text = json.dumps({"format": FAMILY_FORMAT, "models": fields}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def prune_config(self, method: str, ratio: float) -> PruneConfig:
        """The :class:`PruneConfig` of one pruned model of the family."""
        return PruneConfig(method=method, ratio=ratio, cycles=self.cycles, train=self.train, retrain=self.retrain,
                           seed=self.seed, opset=self.opset, channel_multiple=self.channel_multiple)


def make_config(**fields: Any) -> FamilyConfig:
    """:class:`FamilyConfig` from keyword fields; a bad field raises :class:`PruneError` in one line."""
    try:
        return FamilyConfig(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise PruneError(f"bad family configuration: {problems}") from exc
    except PruneError as exc:
        raise PruneError(f"bad family configuration: {exc}") from exc


def model_name(method: str, ratio: float) -> str:
    """``wt_0.7``, ``ft_0.95``: file stem and pair name of a pruned model."""
    return f"{method}_{ratio:g}"


def digits_split(n_train: int = 1000, random_state: int = 0) -> Dataset:
    """scikit-learn digits with ``n_train`` stratified training images and the rest (~800) held out.

    The standard split of :func:`sisguard.prune.data.load_digits` holds out 450 images, too few
    to tell a 0.5-point difference in accuracy; this one trades training images for a larger
    held-out split.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    if not 50 <= n_train <= len(bunch.target) - 100:
        raise PruneError(f"digits has {len(bunch.target)} images: n_train must lie in [50, "
                         f"{len(bunch.target) - 100}], got {n_train}")
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, train_size=n_train, random_state=random_state,
                                                        stratify=y)
    return Dataset(f"digits-{n_train}", x_train, y_train, x_test, y_test)


def family_data(config: FamilyConfig) -> Dataset:
    """The split a family trains on and is labelled on."""
    if config.data == "digits":
        return digits_split(config.n_train)
    return synthetic32(config.synthetic_n, seed=0, test_fraction=config.synthetic_test_fraction)


# --------------------------------------------------------------------------- ground truth


def paired_difference(wrong_a: np.ndarray, wrong_b: np.ndarray) -> tuple[float, float]:
    """Difference of error rates ``a − b`` in points and its paired standard error.

    ``wrong_*`` are ``[draws, images]`` 0/1 arrays on the same inputs; draws of one image are
    averaged first, so the standard error counts images, not noisy copies.
    """
    if wrong_a.shape != wrong_b.shape:
        raise PruneError(f"error arrays differ in shape: {wrong_a.shape} vs {wrong_b.shape}")
    per_image = (wrong_a.astype(np.float64) - wrong_b.astype(np.float64)).mean(axis=0)
    n = per_image.size
    se = float(per_image.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return 100.0 * float(per_image.mean()), 100.0 * se


def label_of(excess_pp: dict[str, float], damaged_pp: float = 2.0, healthy_pp: float = 0.5) -> str:
    """``damaged`` if some shift's excess ≥ ``damaged_pp``, ``healthy`` if all ≤ ``healthy_pp``, else ``grey``."""
    if not excess_pp:
        raise PruneError("a label needs the excess error of at least one shift")
    worst = max(excess_pp.values())
    if worst >= damaged_pp - 1e-9:
        return "damaged"
    if worst <= healthy_pp + 1e-9:
        return "healthy"
    return "grey"


def label_is_robust(excess_pp: dict[str, float], se_pp: dict[str, float], damaged_pp: float = 2.0,
                    healthy_pp: float = 0.5) -> bool:
    """Whether :func:`label_of` gives the same label with every excess moved by one standard error either way."""
    label = label_of(excess_pp, damaged_pp, healthy_pp)
    low = {s: v - se_pp[s] for s, v in excess_pp.items()}
    high = {s: v + se_pp[s] for s, v in excess_pp.items()}
    return label_of(low, damaged_pp, healthy_pp) == label == label_of(high, damaged_pp, healthy_pp)


def _wrong(session: object, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(run_onnx(session, x).argmax(axis=1) != y)


def shifted_wrong(sessions: dict[str, object], data: Dataset, shifts: list[Shift], draws: int,
                  seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Model → shift → ``[draws, images]`` 0/1 array of wrong predictions (one draw for deterministic shifts)."""
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in sessions}
    for shift in [Shift("clean"), *shifts]:
        n_draws = draws if shift.kind in ("uniform", "gaussian", "saltpepper") else 1
        inputs = [apply_shift(shift, data.x_test, data.value_range, seed + d) for d in range(n_draws)]
        for name, session in sessions.items():
            out[name][shift.name] = np.stack([_wrong(session, x, data.y_test) for x in inputs])
    return out


def ground_truth(wrong: dict[str, dict[str, np.ndarray]], kinds: dict[str, dict[str, Any]],
                 config: FamilyConfig) -> dict[str, Any]:
    """Per model: accuracy, error per shift, excess over dense and control with standard errors, label.

    ``wrong`` comes from :func:`shifted_wrong` and must hold ``dense`` and ``control``; ``kinds``
    gives each model's description (kind, method, ratio, file, sha256) copied into the result.
    A pure function of its inputs, so the labelling rules can be checked on constructed cases.
    """
    for needed in ("dense", "control"):
        if needed not in wrong:
            raise PruneError(f"ground truth needs the {needed} model")
    shifts = [s for s in wrong["dense"] if s != "clean"]
    dense_acc = 1.0 - float(wrong["dense"]["clean"].mean())
    models: dict[str, Any] = {}
    for name, per_shift in wrong.items():
        entry: dict[str, Any] = dict(kinds.get(name, {}))
        acc = 1.0 - float(per_shift["clean"].mean())
        clean_gap, clean_se = paired_difference(per_shift["clean"], wrong["dense"]["clean"])
        entry.update(clean_acc=acc, clean_gap_vs_dense_pp=clean_gap, clean_gap_se_pp=clean_se,
                     clean_within_tolerance=bool(100.0 * (dense_acc - acc) <= config.clean_tolerance_pp + 1e-9))
        rows: dict[str, dict[str, float]] = {}
        for shift in shifts:
            over_dense, se_dense = paired_difference(per_shift[shift], wrong["dense"][shift])
            over_control, se_control = paired_difference(per_shift[shift], wrong["control"][shift])
            rows[shift] = {"error": float(per_shift[shift].mean()), "excess_over_dense_pp": over_dense,
                           "se_vs_dense_pp": se_dense, "excess_over_control_pp": over_control,
                           "se_vs_control_pp": se_control, "growth_over_dense_pp": over_dense - clean_gap}
        excess = {s: r["excess_over_dense_pp"] for s, r in rows.items()}
        worst = max(shifts, key=lambda s: excess[s])
        worst_control = max(shifts, key=lambda s: rows[s]["excess_over_control_pp"])
        entry.update(
            shifts=rows, worst_shift=worst, worst_excess_over_dense_pp=excess[worst],
            worst_shift_vs_control=worst_control,
            worst_excess_over_control_pp=rows[worst_control]["excess_over_control_pp"],
            label=label_of(excess, config.damaged_pp, config.healthy_pp),
            label_robust=label_is_robust(excess, {s: r["se_vs_dense_pp"] for s, r in rows.items()},
                                         config.damaged_pp, config.healthy_pp),
            label_vs_control=label_of({s: r["excess_over_control_pp"] for s, r in rows.items()},
                                      config.damaged_pp, config.healthy_pp),
            label_vs_control_robust=label_is_robust(
                {s: r["excess_over_control_pp"] for s, r in rows.items()},
                {s: r["se_vs_control_pp"] for s, r in rows.items()}, config.damaged_pp, config.healthy_pp),
        )
        models[name] = entry
    noise: dict[str, Any] = {}
    if "control2" in wrong:
        noise = {shift: paired_difference(wrong["control2"][shift], wrong["control"][shift])[0]
                 for shift in ["clean", *shifts]}
    return {
        "definition": {
            "excess_over_dense_pp": "error(model, shift) − error(dense, shift), percentage points",
            "excess_over_control_pp": "error(model, shift) − error(control, shift), percentage points",
            "growth_over_dense_pp": "(error under shift − clean error) of the model minus that of the dense model",
            "label": f"damaged: excess over dense ≥ {config.damaged_pp} under some shift; healthy: ≤ "
                     f"{config.healthy_pp} under every shift; grey otherwise",
            "label_vs_control": "the same rule on the excess over the control (not the issue's ground truth; "
                                "shows where the dense model's own fragility decides the label)",
            "se": "paired standard error over held-out images (noise draws averaged per image)",
        },
        "thresholds_pp": {"damaged": config.damaged_pp, "healthy": config.healthy_pp,
                          "clean_tolerance": config.clean_tolerance_pp},
        "shifts": shifts,
        "n_test": int(wrong["dense"]["clean"].shape[1]),
        "noise_draws": config.noise_draws,
        "dense_acc": dense_acc,
        "control2_minus_control_pp": noise,
        "models": models,
    }


def markdown_table(gt: dict[str, Any]) -> str:
    """The ground truth as a Markdown table (excess over the dense model per shift, ± one standard error)."""
    shifts = gt["shifts"]
    lines = [f"Held-out images: {gt['n_test']}; dense accuracy {100 * gt['dense_acc']:.2f} %. Cells: excess error "
             "over the dense model under the shift, points ± one paired standard error. Label: "
             f"{gt['definition']['label']} (* = changes within one standard error).", "",
             "| model | ratio | clean acc | Δ clean | " + " | ".join(shifts)
             + " | worst vs dense | worst vs control | label | label vs control |",
             "|---|---|---|---|" + "---|" * len(shifts) + "---|---|---|---|"]
    for name, m in gt["models"].items():
        cells = [f"{m['shifts'][s]['excess_over_dense_pp']:+.1f}±{m['shifts'][s]['se_vs_dense_pp']:.1f}"
                 for s in shifts]
        ratio = m.get("ratio")
        lines.append(
            f"| {name} | {'–' if ratio is None else f'{ratio:.3f}'} | {100 * m['clean_acc']:.2f} | "
            f"{m['clean_gap_vs_dense_pp']:+.1f}{'' if m['clean_within_tolerance'] else ' (!)'} | "
            + " | ".join(cells)
            + f" | {m['worst_excess_over_dense_pp']:+.1f} ({m['worst_shift']}) | "
            f"{m['worst_excess_over_control_pp']:+.1f} ({m['worst_shift_vs_control']}) | "
            f"{m['label']}{'' if m['label_robust'] else '*'} | "
            f"{m['label_vs_control']}{'' if m['label_vs_control_robust'] else '*'} |")
    if gt["control2_minus_control_pp"]:
        noise = gt["control2_minus_control_pp"]
        lines += ["", "Retraining noise (control2 − control, points): "
                  + ", ".join(f"{s} {v:+.1f}" for s, v in noise.items()) + "."]
    lines.append("Δ clean: clean error minus the dense model's; (!) = accuracy more than the tolerance below dense.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- building


def _family_yaml(models: dict[str, dict[str, Any]], class_labels: list[str]) -> str:
    labels = ", ".join(json.dumps(label) for label in class_labels)
    lines = ["# sisguard server config: each pruned model of the family (and the second control) paired",
             "# with the dense model and the control. Paths are relative to this file.", "pairs:"]
    pruned = [n for n, m in models.items() if m["kind"] == "pruned"] + ["control2"]
    for name in pruned:
        lines += [f"  - name: {name}",
                  "    dense: dense.onnx",
                  f"    pruned: {models[name]['file']}",
                  "    control: control.onnx",
                  f"    dense_sha256: {models['dense']['sha256']}",
                  f"    pruned_sha256: {models[name]['sha256']}",
                  f"    control_sha256: {models['control']['sha256']}",
                  "    output_kind: logits",
                  f"    class_labels: [{labels}]"]
    return "\n".join(lines) + "\n"


def _read_state(out: Path, models_hash: str, log: Log | None) -> dict[str, Any]:
    """The recorded state when its models belong to this configuration; otherwise clear the old family's files."""
    path = out / "family.json"
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        state = {}
    if state.get("models_hash") == models_hash:
        return state  # type: ignore[no-any-return]
    if log is not None:
        log(f"[family] {out}: configuration changed, rebuilding")
    for entry in state.get("models", {}).values():
        (out / str(entry.get("file", ""))).unlink(missing_ok=True)
    for name in ("family.json", "ground_truth.json", "ground_truth.md", "family.yaml", "dense.pt", "data.npz"):
        (out / name).unlink(missing_ok=True)
    return {}


def _reusable(out: Path, state: dict[str, Any], name: str) -> bool:
    entry = state.get("models", {}).get(name)
    return bool(entry) and (out / entry["file"]).is_file() and sha256_file(out / entry["file"]) == entry["sha256"]


def make_family(config: FamilyConfig, out_dir: str | Path, log: Log | None = None,
                force: bool = False) -> dict[str, Any]:
    """Build (or reuse) the family in ``out_dir``; return the ground truth (also ``ground_truth.json``).

    ``force`` rebuilds everything even when the cache matches.
    """
    from sisguard.prune.models import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digest, models_digest = config.config_hash(), config.models_hash()
    if force:
        _read_state(out, "", None)
    state = _read_state(out, models_digest, log)
    if state.get("complete") and state.get("config_hash") == digest and (out / "ground_truth.json").is_file() and all(
            _reusable(out, state, n) for n in state.get("models", {})):
        if log is not None:
            log(f"[family] {out}: cached (config {digest[:12]})")
        return json.loads((out / "ground_truth.json").read_text())  # type: ignore[no-any-return]

    data = family_data(config)
    np.savez_compressed(out / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                        y_test=data.y_test)
    configs = {model_name(m, r): config.prune_config(m, r) for m in config.methods for r in config.ratios}
    seed_everything(config.seed)  # the initial weights depend on it
    dense = build_model(arch=config.arch, num_classes=data.num_classes, in_channels=data.input_shape[0],
                        width=config.width)
    for prune_config in configs.values():  # every check before any training
        validate_setup(dense, data, prune_config)
    base = next(iter(configs.values()))
    state = {"format": FAMILY_FORMAT, "config_hash": digest, "models_hash": models_digest,
             "config": config.model_dump(mode="json"),
             "data": {"name": data.name, "n_train": len(data.x_train), "n_test": len(data.x_test),
                      "input_shape": list(data.input_shape), "num_classes": data.num_classes},
             "complete": False, "models": dict(state.get("models", {}))}
    dense_params = count_params(dense)

    def record(name: str, model: torch.nn.Module, kind: str, **info: Any) -> None:
        path = out / f"{name}.onnx"
        export_onnx(model, data.input_shape, path, config.opset)
        diff = check_onnx(path, model, data.x_test)
        state["models"][name] = {"file": path.name, "kind": kind, "sha256": sha256_file(path),
                                 "params": count_params(model), "nonzero": count_nonzero(model),
                                 "max_abs_diff_vs_torch": diff, **info}
        (out / "family.json").write_text(json.dumps(state, indent=2) + "\n")
        if log is not None:
            log(f"[family] wrote {path.name} (max |onnx − torch| = {diff:.1e})")

    if _reusable(out, state, "dense") and (out / "dense.pt").is_file():
        dense.load_state_dict(torch.load(out / "dense.pt", map_location="cpu", weights_only=True))
        dense.eval()
    else:
        state["models"] = {}  # everything else derives from the dense weights
        train_dense(dense, data, base, log)
        torch.save(dense.state_dict(), out / "dense.pt")
        record("dense", dense, "dense", seed=config.seed, ratio=0.0)
    for name, seed in (("control", config.control_seeds[0]), ("control2", config.control_seeds[1])):
        if not _reusable(out, state, name):
            record(name, retrain_control(dense, data, base, log, seed=seed), "control", seed=seed, ratio=0.0)
    for name, prune_config in configs.items():
        if not _reusable(out, state, name):
            pruned, _ = prune_and_retrain(dense, data, prune_config, log)
            record(name, pruned, "pruned", method=prune_config.method, target_ratio=prune_config.ratio,
                   ratio=1.0 - count_nonzero(pruned) / dense_params, seed=config.seed)
    order = ["dense", "control", "control2", *configs]
    state["models"] = {n: state["models"][n] for n in order}

    if log is not None:
        log(f"[family] ground truth on {len(data.x_test)} held-out inputs …")
    sessions = {n: make_session(out / state["models"][n]["file"], threads=2) for n in order}
    wrong = shifted_wrong(sessions, data, [parse_shift(s) for s in config.shifts], config.noise_draws)
    gt = ground_truth(wrong, state["models"], config)
    gt = {"config_hash": digest, "models_hash": models_digest, "config": state["config"], "data": state["data"], **gt}
    (out / "ground_truth.json").write_text(json.dumps(gt, indent=2) + "\n")
    (out / "ground_truth.md").write_text(markdown_table(gt))
    labels = [str(i) for i in range(data.num_classes)]
    (out / "family.yaml").write_text(_family_yaml(state["models"], labels))
    state["complete"] = True
    (out / "family.json").write_text(json.dumps(state, indent=2) + "\n")
    return gt


def load_ground_truth(out_dir: str | Path) -> dict[str, Any]:
    """Read ``ground_truth.json`` of a family directory built by :func:`make_family`."""
    path = Path(out_dir) / "ground_truth.json"
    if not path.is_file():
        raise PruneError(f"{str(out_dir)!r} holds no ground truth (no ground_truth.json): build it with make_family")
    return json.loads(path.read_text())  # type: ignore[no-any-return]
