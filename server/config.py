"""Server configuration: a YAML file validated with pydantic, overridden by ``SISGUARD_*`` variables.

Built once at start-up (:func:`load_settings`) and passed down through constructors.
Nested fields are overridden with a double underscore, e.g. ``SISGUARD_PORT=6000`` or
``SISGUARD_LIMITS__MAX_BATCH_ROWS=256``.
"""

from __future__ import annotations

import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

OutputKind = Literal["logits", "probabilities", "scores"]
FeatureChoice = Literal["element", "pixel", "patch", "explicit"]
BaselineChoice = Literal["zeros", "mean", "constant", "blur", "pad_token", "mask_token"]
ShiftKind = Literal["uniform", "gaussian", "brightness", "contrast", "blur"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DivergenceConfig(_Strict):
    """When an explained request counts as divergent."""

    min_iou: float = Field(0.5, ge=0.0, le=1.0, description="IoU of the first SIS below this is divergent.")
    min_rank_correlation: float | None = Field(
        None, ge=-1.0, le=1.0, description="BackSelect rank correlation below this is divergent (off when null)."
    )
    require_cross_sufficiency: bool = Field(
        True, description="A SIS of one model that does not keep the other confident is divergent."
    )


class ExplainConfig(_Strict):
    """Defaults for Explain requests on this pair (a request may override each)."""

    threshold: float = Field(0.9, description="tau: absolute score, or a fraction of f_dense(x) when relative.")
    threshold_relative: bool = Field(False, description="Read threshold as r in tau = r * f_dense(x).")
    features: FeatureChoice = Field("element", description="How input elements group into features.")
    patch: tuple[int, int] = Field((2, 2), description="Patch height and width for features=patch.")
    group_map_file: Path | None = Field(None, description=".npy integer map for features=explicit.")
    baseline: BaselineChoice = Field("zeros", description="What a masked feature is set to.")
    baseline_constant: float = Field(0.0, description="Value for baseline=constant.")
    baseline_blur_sigma: float = Field(
        2.0, gt=0.0, le=1000.0, description="baseline=blur: Gaussian sigma in pixels of the blurred input."
    )
    mean_file: Path | None = Field(None, description=".npy tensor of one input's shape for baseline=mean.")
    mean_values: list[float] | None = Field(
        None, description="baseline=mean given inline: one value per input element (tabular: per feature)."
    )
    max_sis: int = Field(1, ge=1, le=64, description="SIS collected per explanation by default.")
    max_evaluations: int = Field(200_000, ge=1, description="Default evaluation budget per variant.")
    divergence: DivergenceConfig = DivergenceConfig()


class ImageConfig(_Strict):
    """How the CLI turns an image file into this pair's input."""

    scale: float = Field(1.0 / 255.0, description="Pixel values are multiplied by this after resizing.")
    invert: bool = Field(False, description="Invert grey levels first (dark digits on white paper).")


class NoiseProbeConfig(_Strict):
    """Top-1 agreement of dense and pruned on noisy copies of sampled Predict rows (uniform noise in [-eps, eps])."""

    sample_rate: float = Field(0.01, ge=0.0, le=1.0, description="Share of Predict rows probed; 0 disables.")
    levels: list[float] = Field(
        [0.05, 0.1, 0.2], min_length=1, max_length=8, description="Noise amplitudes eps (input units)."
    )
    copies: int = Field(16, ge=1, le=1024, description="Noisy copies per level and sampled row.")
    max_per_second: float = Field(5.0, gt=0.0, description="Budget: probed rows per second.")
    queue_size: int = Field(64, ge=1, description="Sampled rows waiting; more are dropped (and counted).")

    @field_validator("levels")
    @classmethod
    def _valid_levels(cls, v: list[float]) -> list[float]:
        if any(not (0.0 < x < 1e6) for x in v):
            raise ValueError("noise levels must be positive")
        if len(set(v)) != len(v):
            raise ValueError("noise levels must be distinct")
        return sorted(v)


class ShiftSpec(_Strict):
    """One shift a probe applies to a sampled input (levels as fractions of ``value_range``, as the toolkit's)."""

    kind: ShiftKind = Field(description="uniform, gaussian (noise), brightness, contrast or blur.")
    level: float = Field(description="uniform/gaussian: amplitude; brightness: offset; contrast: factor; blur: sigma.")
    copies: int = Field(1, ge=1, le=256, description="Shifted copies per sampled row (random kinds draw each anew).")

    @model_validator(mode="after")
    def _valid_level(self) -> ShiftSpec:
        if not math.isfinite(self.level):
            raise ValueError("shift level must be a finite number")
        if self.kind in ("uniform", "gaussian", "blur") and self.level <= 0:
            raise ValueError(f"{self.kind} level must be positive")
        if self.kind == "contrast" and not 0 <= self.level < 1e6:
            raise ValueError("contrast level is a non-negative factor")
        if self.kind == "brightness" and self.level == 0:
            raise ValueError("brightness level 0 is no shift")
        return self

    @property
    def name(self) -> str:
        """``kind-level``, e.g. ``brightness-0.3`` (the ``shift`` label and the measure suffix)."""
        return f"{self.kind}-{self.level:g}"


def _default_shifts() -> list[ShiftSpec]:
    return [
        ShiftSpec(kind="uniform", level=0.3, copies=4),
        ShiftSpec(kind="gaussian", level=0.1, copies=4),
        ShiftSpec(kind="brightness", level=0.3),
        ShiftSpec(kind="contrast", level=0.5),
        ShiftSpec(kind="blur", level=0.8),
    ]


class ShiftProbeConfig(_Strict):
    """Shift probes: dense, pruned and control on shifted copies of sampled Predict rows (docs/signal.md)."""

    sample_rate: float = Field(0.01, ge=0.0, le=1.0, description="Share of Predict rows probed; 0 disables.")
    max_per_second: float = Field(5.0, gt=0.0, description="Budget: probed rows per second.")
    queue_size: int = Field(64, ge=1, description="Sampled rows waiting; more are dropped (and counted).")
    value_range: tuple[float, float] | None = Field(
        None,
        description="[low, high] of the model's inputs: shifts scale by it and clip to it (none: [0, 1], no clip).",
    )
    shifts: list[ShiftSpec] = Field(default_factory=_default_shifts, min_length=1, max_length=16)

    @model_validator(mode="after")
    def _valid(self) -> ShiftProbeConfig:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError(f"shifts must be distinct, got {names}")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError("value_range must be [low, high] with low < high")
        return self


#: Verdict margins by default, in each measure's own units: the measures that tracked the ground truth
#: (excess error under shifts) on the validation family (docs/signal.md). The SIS measures are reported
#: with intervals but do not decide by default: they also see rationale changes that are not (yet)
#: robustness damage; add e.g. ``cross_insufficiency: 0.1`` to have them decide.
DEFAULT_MARGINS: dict[str, float] = {
    "output_tv": 0.02,
    "instability/*": 0.01,
}


class VerdictConfig(_Strict):
    """The per-pair verdict: excess of dense-vs-pruned over dense-vs-control, with confidence (docs/signal.md)."""

    window: int = Field(400, ge=10, le=100_000, description="Samples per measure kept (a sliding window).")
    max_age_seconds: float | None = Field(
        None, gt=0.0, le=30 * 86400.0, description="Samples older than this leave the window (none: only by count)."
    )
    min_samples: int = Field(30, ge=5, le=100_000, description="Samples a measure needs before it may decide.")
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Joint confidence of the intervals (Bonferroni over the deciding measures)."
    )
    bootstrap: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples per interval.")
    update_seconds: float = Field(2.0, gt=0.0, le=3600.0, description="How often verdict metrics are recomputed.")
    margins: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MARGINS),
        description="Measure -> margin: 'damaged' when the excess's lower bound is above it. "
        "'instability/*' (or 'disagreement/*', 'tv/*') applies to every probed shift.",
    )

    @field_validator("margins")
    @classmethod
    def _valid_margins(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one measure must decide the verdict")
        for name, margin in v.items():
            if not (math.isfinite(margin) and 0.0 <= margin <= 1e6):
                raise ValueError(f"margin of {name} must be a finite number >= 0, got {margin}")
        return v


class ShadowConfig(_Strict):
    """Shadow explanations of live Predict traffic, at background priority."""

    sample_rate: float = Field(0.01, ge=0.0, le=1.0, description="Share of Predict rows explained; 0 disables.")
    max_per_second: float = Field(1.0, gt=0.0, description="Budget: shadow explanations per second.")
    queue_size: int = Field(32, ge=1, description="Sampled rows waiting; more are dropped (and counted).")
    noise_probe: NoiseProbeConfig = NoiseProbeConfig()
    shift_probe: ShiftProbeConfig = ShiftProbeConfig()


class InputConfig(_Strict):
    """How one input of a several-input model is fed (docs/byom.md)."""

    name: str = Field(description="The input's name in the ONNX file.")
    role: Literal["features", "passthrough", "derived"] = Field(
        description="features: what is predicted on and explained (exactly one input); passthrough: sent with "
        "each request, the same for every masked copy; derived: computed from the features."
    )
    derive: Literal["presence", "zeros", "ones"] | None = Field(
        None, description="derived only: presence (1 where the feature is not text.pad_token_id), zeros or ones."
    )

    @model_validator(mode="after")
    def _derive_only_when_derived(self) -> InputConfig:
        if (self.role == "derived") != (self.derive is not None):
            raise ValueError(f"input {self.name}: derive is set exactly when role is derived")
        return self


class TextConfig(_Strict):
    """Token-id inputs: special ids, the vocabulary and an optional tokenizer for raw text (docs/byom.md)."""

    pad_token_id: int = Field(0, ge=0, description="Padding id: derived attention masks are 0 there.")
    mask_token_id: int | None = Field(None, ge=0, description="Id of the mask token for baseline=mask_token.")
    vocab_size: int | None = Field(
        None, ge=1, description="Token ids must be below this; read from the embedding table when unset."
    )
    tokenizer_file: Path | None = Field(
        None, description="tokenizer.json (Hugging Face tokenizers) sent to clients for raw text."
    )
    max_length: int | None = Field(
        None, ge=1, description="Longest token sequence the model takes (its position embeddings), if limited."
    )


class PairConfig(_Strict):
    """One dense/pruned model pair."""

    name: str = Field(description="Pair name used in requests.")
    dense: Path = Field(description="Dense ONNX file (relative paths are relative to the config file).")
    pruned: Path = Field(description="Pruned ONNX file.")
    dense_sha256: str | None = Field(None, description="Expected sha256 of the dense file.")
    pruned_sha256: str | None = Field(None, description="Expected sha256 of the pruned file.")
    control: Path | None = Field(
        None, description="Control ONNX file: the dense model retrained like the pruned one, but not pruned."
    )
    control_sha256: str | None = Field(None, description="Expected sha256 of the control file.")
    calibration_file: Path | None = Field(
        None, description="JSON written by `sisguard calibrate`: the control floor, used when there is no control."
    )
    input_name: str | None = Field(
        None, description="Input carrying the features; auto-detected when the model has one (or input_ids)."
    )
    inputs: list[InputConfig] | None = Field(
        None, description="Every input of a several-input model and how it is fed; auto-detected when unset."
    )
    output_name: str | None = Field(
        None, description="Output to read; auto-detected: the only output, or the only float [batch, classes] one."
    )
    feature_names: list[str] = Field(default_factory=list, description="Name of each input element (tabular).")
    feature_names_file: Path | None = Field(None, description="Text file with one feature name per line.")
    text: TextConfig | None = Field(None, description="Token-id inputs (text models).")
    output_kind: OutputKind = Field("logits", description="logits (softmax applied), probabilities or scores.")
    class_labels: list[str] = Field(default_factory=list, description="Label of each output column.")
    max_batch_size: int = Field(64, ge=1, le=65536, description="Rows per model run.")
    max_queue_delay_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="Extra wait for more rows when a batch is not full; 0 dispatches at once when idle.",
    )
    queue_capacity: int = Field(8192, ge=1, description="Rows waiting per model before RESOURCE_EXHAUSTED.")
    explain: ExplainConfig = ExplainConfig()
    shadow: ShadowConfig = ShadowConfig()
    image: ImageConfig = ImageConfig()
    verdict: VerdictConfig = VerdictConfig()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("pair names use letters, digits, '_', '.', '-' (at most 63 characters)")
        return v

    @model_validator(mode="after")
    def _known_measures(self) -> PairConfig:
        from sisguard.server.signal.measures import measure_names, resolve_margins

        try:
            resolve_margins(self.verdict.margins, measure_names([s.name for s in self.shadow.shift_probe.shifts]))
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        if self.control_sha256 is not None and self.control is None:
            raise ValueError("control_sha256 is set but no control file is configured")
        if self.explain.mean_file is not None and self.explain.mean_values is not None:
            raise ValueError("set explain.mean_file or explain.mean_values, not both")
        if self.feature_names and self.feature_names_file is not None:
            raise ValueError("set feature_names or feature_names_file, not both")
        if self.explain.baseline in ("pad_token", "mask_token") and self.text is None:
            raise ValueError(f"baseline {self.explain.baseline} needs a text section (token ids)")
        if self.explain.baseline == "mask_token" and self.text is not None and self.text.mask_token_id is None:
            raise ValueError("baseline mask_token needs text.mask_token_id")
        return self

    @field_validator("dense_sha256", "pruned_sha256", "control_sha256")
    @classmethod
    def _valid_sha(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("sha256 must be 64 hex digits")
        return v.lower() if v else v

    def resolved(self, base: Path) -> PairConfig:
        """Paths made absolute against the directory of the config file."""

        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else (base / p).resolve())

        explain = self.explain.model_copy(
            update={"group_map_file": fix(self.explain.group_map_file), "mean_file": fix(self.explain.mean_file)}
        )
        return self.model_copy(
            update={
                "dense": fix(self.dense),
                "pruned": fix(self.pruned),
                "control": fix(self.control),
                "calibration_file": fix(self.calibration_file),
                "feature_names_file": fix(self.feature_names_file),
                "text": None if self.text is None
                else self.text.model_copy(update={"tokenizer_file": fix(self.text.tokenizer_file)}),
                "explain": explain,
            }
        )


class RuntimeConfig(_Strict):
    """ONNX Runtime execution."""

    providers: list[Literal["cuda", "cpu"]] = Field(["cuda", "cpu"], description="Preference order.")
    device_id: int = Field(0, ge=0, description="CUDA device.")
    intra_op_threads: int = Field(0, ge=0, description="Threads inside one operator (0: ONNX Runtime decides).")
    inter_op_threads: int = Field(1, ge=0, description="Threads across operators.")


class TLSConfig(_Strict):
    """TLS on the gRPC port; mutual TLS when client_ca is set (see docs/security.md)."""

    cert: Path | None = Field(None, description="PEM server certificate chain; TLS is on when set.")
    key: Path | None = Field(None, description="PEM private key of the certificate.")
    client_ca: Path | None = Field(None, description="PEM CA bundle; when set, clients must present a certificate.")

    @model_validator(mode="after")
    def _complete(self) -> TLSConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key must be set together")
        if self.client_ca is not None and self.cert is None:
            raise ValueError("tls.client_ca (mutual TLS) needs tls.cert and tls.key")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert is not None


class LimitsConfig(_Strict):
    """Limits enforced before any work starts."""

    max_message_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        le=2**31 - 1,
        description="Largest request of the tensor RPCs (Predict, Explain, ModelInfer); gRPC takes a 32-bit size.",
    )
    max_elements: int = Field(16 * 1024 * 1024, ge=1, description="Input elements per request.")
    max_batch_rows: int = Field(4096, ge=1, description="Rows per Predict/ModelInfer request.")
    max_features: int = Field(4096, ge=1, description="Features per explanation.")
    max_evaluations: int = Field(2_000_000, ge=1, description="Cap on an explanation's budget per variant.")
    max_concurrent_explanations: int = Field(16, ge=1, description="Explanations running at once.")
    explain_cache_size: int = Field(
        256,
        ge=0,
        le=1_000_000,
        description="Finished explanations kept for identical Explain requests (same pair, input and options); "
        "0 disables the cache.",
    )
    max_sis: int = Field(64, ge=1, description="Cap on max_sis.")
    stream_write_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="A streamed response the client does not read for this long ends the call.",
    )
    max_health_watchers: int = Field(1024, ge=1, description="Open health Watch calls (they need no token).")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TOKENS_ENV = "SISGUARD_TOKENS"


def split_tokens(text: str, source: str) -> list[str]:
    """Comma-separated tokens; a source that holds none (empty, or only commas and spaces) is refused."""
    tokens = [t.strip() for t in text.split(",")]
    if not any(tokens):
        raise ConfigError(
            f"{source} is set but holds no token (empty or only commas and spaces); "
            "unset it to run without tokens, or give comma-separated tokens"
        )
    if not all(tokens):
        raise ConfigError(f"{source} holds an empty entry between commas; remove the extra comma")
    return tokens


class _MergedTokens(PydanticBaseSettingsSource):
    """``tokens`` from the YAML (init values) plus ``SISGUARD_TOKENS``, merged rather than replaced."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = [v for k, v in os.environ.items() if k.upper() == TOKENS_ENV]
        if not env:
            return {}
        from_env = split_tokens(env[0], TOKENS_ENV)
        init = getattr(self._init, "init_kwargs", {}).get("tokens") or []
        if isinstance(init, str):
            init = split_tokens(init, "tokens")
        return {"tokens": [*init, *from_env]}


class Settings(BaseSettings):
    """Everything the server reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="SISGUARD_", env_nested_delimiter="__", extra="forbid")

    host: str = Field("127.0.0.1", description="gRPC bind address.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_host: str = Field("127.0.0.1", description="Metrics bind address (loopback unless opened up).")
    metrics_port: int | None = Field(9464, ge=0, le=65535, description="Prometheus metrics port; null disables.")
    reflection: bool = Field(True, description="Serve gRPC server reflection.")
    grace_seconds: float = Field(
        10.0, ge=0, le=3600, allow_inf_nan=False, description="In-flight calls get this long at shutdown."
    )
    log_level: str = Field("INFO", description="Python logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    runtime: RuntimeConfig = RuntimeConfig()
    limits: LimitsConfig = LimitsConfig()
    tls: TLSConfig = TLSConfig()
    health_port: int | None = Field(
        None, ge=0, le=65535, description="Extra plaintext port serving only grpc.health.v1 (probes when TLS is on)."
    )
    tokens_file: Path | None = Field(None, description="File with one accepted bearer token per line ('#' comments).")
    tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted bearer tokens; SISGUARD_TOKENS takes a comma-separated list (prefer tokens_file).",
    )
    pairs: list[PairConfig] = Field(default_factory=list, description="Served model pairs.")

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, v: str) -> str:
        if v.upper() not in LOG_LEVELS:
            raise ValueError(f"log_level {v[:40]!r} is not one of {', '.join(LOG_LEVELS)}")
        return v.upper()

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, v: object) -> object:
        # A blank entry is refused, never dropped: an empty source must not switch auth off.
        if isinstance(v, str):
            v = split_tokens(v, "tokens")
        if isinstance(v, list) and any(isinstance(t, str) and not t.strip() for t in v):
            raise ValueError("tokens holds an empty or blank entry; remove it or give a real token")
        return v

    @model_validator(mode="after")
    def _unique_pairs(self) -> Settings:
        names = [p.name for p in self.pairs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pair names must be unique; repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the YAML file, which is passed as init values; bearer
        # tokens are the exception: SISGUARD_TOKENS adds to the YAML's tokens (docs/security.md).
        return _MergedTokens(settings_cls, init_settings), env_settings, init_settings


class ConfigError(Exception):
    """The configuration cannot be used; the message says which file and why."""


def default_config_path() -> Path:
    """The bundled configuration serving the ``digits`` pair."""
    return Path(str(resources.files("sisguard.server") / "default_config.yaml"))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read ``path`` (the bundled default when None), apply env and ``overrides``, resolve pair paths."""
    path = path or default_config_path()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings(**raw)
    except SettingsError as exc:  # e.g. a nested SISGUARD_* variable that is not JSON
        raise ConfigError(
            f"{str(exc).splitlines()[0]}; nested SISGUARD_* values are JSON, "
            "e.g. SISGUARD_RUNTIME__PROVIDERS='[\"cpu\"]'"
        ) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config {path} is invalid: {problems}") from exc
    base = path.resolve().parent

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p).resolve()

    tls = settings.tls.model_copy(update={k: fix(getattr(settings.tls, k)) for k in ("cert", "key", "client_ca")})
    return settings.model_copy(
        update={
            "pairs": [p.resolved(base) for p in settings.pairs],
            "tls": tls,
            "tokens_file": fix(settings.tokens_file),
        }
    )
