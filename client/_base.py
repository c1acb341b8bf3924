"""What :class:`Client` and :class:`AsyncClient` share: options, channel set-up, request building
and response parsing. Everything here is pure; the two clients differ only in how they call.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import grpc
import numpy as np
from grpc_health.v1 import health_pb2
from numpy.typing import ArrayLike, NDArray

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb

from ._errors import InvalidInput, ServerError, SISGuardError
from ._features import Baseline, Features
from ._models import (
    SIS,
    Agreement,
    BackSelectTrace,
    ExplainDefaults,
    ExplainProgress,
    Explanation,
    HealthStatus,
    ImageDefaults,
    MeasureExcess,
    ModelFile,
    PairHealth,
    PairInfo,
    Prediction,
    SISStatus,
    VariantExplanation,
    VariantName,
    VariantPrediction,
    Variants,
)
from ._tensors import dtype_of, from_tensor, to_tensor

__all__ = ["TLS", "UNSET", "ExplainOptions", "RetryPolicy", "Timeout"]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "sisguard-python"
SERVICE = "sisguard.v1.SISGuard"
HEALTH_SERVICE = "grpc.health.v1.Health"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET = _Unset.UNSET
"""Per-call ``timeout`` left out: the client's timeout applies."""

Timeout = float | None | Literal[_Unset.UNSET]
PEM = bytes | str | Path


# -- options ----------------------------------------------------------------------------------


def _pem(value: PEM | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    text = str(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} file {text}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class TLS:
    """TLS settings; ``Client(..., tls=True)`` is ``TLS()``: the system's root certificates.

    Each certificate or key is PEM bytes, PEM text, or a path to a PEM file.

    Attributes:
        root_certificates: CA bundle that signed the server's certificate (None: system roots).
        certificate_chain: the client's certificate, for mutual TLS.
        private_key: the client's key, for mutual TLS.
        server_name: the name to check in the server's certificate when it differs from the
            target's host (e.g. connecting to an IP address).
    """

    root_certificates: PEM | None = None
    certificate_chain: PEM | None = None
    private_key: PEM | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        chain = _pem(self.certificate_chain, "client certificate")
        key = _pem(self.private_key, "client key")
        if (chain is None) != (key is None):
            raise InvalidInput("mutual TLS needs both a client certificate and its private key")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_certificates, "root certificate"),
            private_key=key,
            certificate_chain=chain,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff, carried out by gRPC itself (its service config).

    UNAVAILABLE is retried on every call (the server is down, restarting or not ready yet);
    RESOURCE_EXHAUSTED (a full queue) too, except on Explain, where it usually means a spent
    evaluation budget that a retry would spend again. gRPC waits a random time up to
    ``initial_backoff * multiplier**n`` (at most ``max_backoff``) before retry ``n``; the call's
    timeout bounds all attempts together. gRPC allows at most 5 attempts.
    """

    attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    retry_resource_exhausted: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 5:
            raise InvalidInput(f"attempts must be 1..5 (gRPC's limit), got {self.attempts}")
        if not (0 < self.initial_backoff <= self.max_backoff) or self.multiplier <= 0:
            raise InvalidInput("backoffs must satisfy 0 < initial_backoff <= max_backoff and multiplier > 0")

    @classmethod
    def coerce(cls, value: int | RetryPolicy | None) -> RetryPolicy:
        if isinstance(value, RetryPolicy):
            return value
        if value is None:
            return cls(attempts=1)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
            raise InvalidInput(f"retries must be 0..4 (gRPC allows 5 attempts) or a RetryPolicy, got {value!r}")
        return cls(attempts=value + 1)

    def service_config(self) -> str:
        """The gRPC service config JSON (``grpc.service_config``) carrying this policy."""
        if self.attempts == 1:
            return json.dumps({"methodConfig": []})

        def policy(codes: list[str]) -> dict[str, Any]:
            return {
                "maxAttempts": self.attempts,
                "initialBackoff": f"{self.initial_backoff:.3f}s",
                "maxBackoff": f"{self.max_backoff:.3f}s",
                "backoffMultiplier": self.multiplier,
                "retryableStatusCodes": codes,
            }

        busy = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"] if self.retry_resource_exhausted else ["UNAVAILABLE"]
        return json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": SERVICE, "method": m} for m in ("Explain", "ExplainStream")],
                        "retryPolicy": policy(["UNAVAILABLE"]),
                    },
                    {"name": [{"service": SERVICE}, {"service": HEALTH_SERVICE}], "retryPolicy": policy(busy)},
                ]
            }
        )


@dataclass(frozen=True)
class Settings:
    """A client's resolved options."""

    target: str
    tls: TLS | None
    token: str | None
    timeout: float | None
    retry: RetryPolicy
    options: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def build(
        cls,
        target: str,
        tls: bool | TLS | None,
        token: str | None,
        timeout: float | None,
        retries: int | RetryPolicy | None,
        options: Sequence[tuple[str, Any]] | None,
    ) -> Settings:
        if not isinstance(target, str) or not target.strip():
            raise InvalidInput(f"target must be 'host:port', got {target!r}")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidInput(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        if token is not None and (not token or any(c in token for c in "\r\n")):
            raise InvalidInput("token must be a non-empty single line")
        tls_config = TLS() if tls is True else (tls or None)
        return cls(target.strip(), tls_config, token, timeout, RetryPolicy.coerce(retries), tuple(options or ()))

    def channel_options(self) -> list[tuple[str, Any]]:
        r = self.retry
        opts: list[tuple[str, Any]] = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", r.service_config()),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.primary_user_agent", USER_AGENT),
            # Reconnect on the retry policy's time scale, so a server that comes back is seen
            # by the next retry rather than after gRPC's default reconnect backoff.
            ("grpc.initial_reconnect_backoff_ms", max(1, int(r.initial_backoff * 1000))),
            ("grpc.min_reconnect_backoff_ms", max(1, int(r.initial_backoff * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(r.max_backoff * 1000))),
        ]
        if self.tls is not None and self.tls.server_name:
            opts.append(("grpc.ssl_target_name_override", self.tls.server_name))
        overridden = {k for k, _ in self.options}
        return [o for o in opts if o[0] not in overridden] + list(self.options)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """Channel credentials for TLS (with the token as call credentials), None for plaintext."""
        if self.tls is None:
            return None
        creds = self.tls.credentials()
        if self.token is not None:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(self.token))
        return creds

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Per-call metadata: the bearer token when the channel is plaintext (gRPC sends call
        credentials only over TLS; on plaintext the token travels unprotected)."""
        if self.token is not None and self.tls is None:
            return (("authorization", f"Bearer {self.token}"),)
        return ()

    def call_kwargs(self, timeout: Timeout) -> dict[str, Any]:
        """``timeout`` and ``metadata`` for one stub call."""
        return {"timeout": self.timeout_for(timeout), "metadata": self.metadata()}

    def timeout_for(self, timeout: Timeout) -> float | None:
        if timeout is UNSET:
            return self.timeout
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidInput(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        return timeout


# -- requests ---------------------------------------------------------------------------------

_VARIANT: dict[str, int] = {"dense": pb.DENSE, "pruned": pb.PRUNED, "both": pb.BOTH}
_MODE: dict[str, int] = {"exact": pb.EXACT, "batched": pb.BATCHED}
_FEATURE: dict[str, int] = {"element": pb.ELEMENT, "pixel": pb.PIXEL, "patch": pb.PATCH, "explicit": pb.EXPLICIT}
_BASELINE: dict[str, int] = {
    "zeros": pb.ZEROS, "mean": pb.MEAN, "constant": pb.CONSTANT, "tensor": pb.CUSTOM, "blur": pb.BLUR
}


def _variant(value: str) -> int:
    try:
        return _VARIANT[value]
    except KeyError:
        raise InvalidInput(f"variant must be 'dense', 'pruned' or 'both', got {value!r}") from None


def _as_input(x: ArrayLike, info: PairInfo | None, *, batch: bool) -> NDArray[Any]:
    """``x`` as the pair expects it: its dtype (when the cast keeps the kind of values) and, for
    batches, a batch axis added to a single input."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input must be array-like: {exc}") from exc
    if info is None:
        return arr
    if batch and arr.shape == info.input_shape:
        arr = arr[None]
    if arr.dtype != info.input_dtype and np.can_cast(arr.dtype, info.input_dtype, casting="same_kind"):
        arr = arr.astype(info.input_dtype)
    return arr


def predict_request(pair: str, x: ArrayLike, variant: Variants, info: PairInfo | None) -> Any:
    return pb.PredictRequest(pair=pair, inputs=to_tensor(_as_input(x, info, batch=True)), variant=_variant(variant))


class ExplainOptions(TypedDict, total=False):
    """Options of ``explain`` and ``explain_stream``; each left out takes the pair's default.

    Keys:
        target: class to explain (default: the dense model's top-1 on the input).
        threshold: tau, the score a subset must keep; a fraction of the dense model's score on the
            full input when ``relative`` is True.
        relative: read ``threshold`` as ``r`` in ``tau = r * f_dense(x)``.
        features: a :class:`Features`, ``"element"``, ``"pixel"``, ``"patch:HxW"``, or an integer
            group map broadcastable to one input.
        baseline: a :class:`Baseline`, ``"zeros"``, ``"mean"``, a number, or a tensor of one input.
        max_sis: how many disjoint SIS to collect (default 1).
        variants: ``"dense"``, ``"pruned"`` or ``"both"`` (default; adds the agreement).
        mode: ``"exact"`` (default) or ``"batched"`` (removes ``batch_k`` features per step).
        batch_k: features removed per BackSelect step in batched mode.
        max_evaluations: evaluation budget per variant (server-capped).
        return_backselect: return the full BackSelect order and scores of each round.
        allow_partial: past the budget, return what was found (status ``"partial"``) instead of
            raising :class:`ResourceExhausted`.
    """

    target: int | None
    threshold: float | None
    relative: bool
    features: Features | str | ArrayLike | None
    baseline: Baseline | str | float | ArrayLike | None
    max_sis: int
    variants: Variants
    mode: Literal["exact", "batched"]
    batch_k: int | None
    max_evaluations: int | None
    return_backselect: bool
    allow_partial: bool


def explain_request(
    pair: str,
    x: ArrayLike,
    info: PairInfo | None,
    *,
    target: int | None = None,
    threshold: float | None = None,
    relative: bool = False,
    features: Features | str | ArrayLike | None = None,
    baseline: Baseline | str | float | ArrayLike | None = None,
    max_sis: int = 1,
    variants: Variants = "both",
    mode: Literal["exact", "batched"] = "exact",
    batch_k: int | None = None,
    max_evaluations: int | None = None,
    return_backselect: bool = False,
    allow_partial: bool = False,
) -> Any:
    req = pb.ExplainRequest(pair=pair, input=to_tensor(_as_input(x, info, batch=False)), variants=_variant(variants))
    if target is not None:
        if isinstance(target, bool) or int(target) != target or target < 0:
            raise InvalidInput(f"target must be a class index >= 0, got {target!r}")
        req.target = int(target)
    if threshold is not None:
        if not math.isfinite(threshold):
            raise InvalidInput(f"threshold must be a finite number, got {threshold}")
        if relative:
            req.threshold_relative = float(threshold)
        else:
            req.threshold_absolute = float(threshold)
    elif relative:
        raise InvalidInput("relative=True needs a threshold (a fraction of the dense score)")
    if features is not None:
        f = Features.coerce(features)
        req.features = _FEATURE[f.kind]
        if f.patch is not None:
            req.patch_height, req.patch_width = f.patch
        if f.map is not None:
            req.group_map.CopyFrom(to_tensor(f.map))
    if baseline is not None:
        b = Baseline.coerce(baseline)
        req.baseline = _BASELINE[b.kind]
        if b.kind == "constant":
            req.baseline_constant = b.value
        if b.tensor is not None:
            req.baseline_tensor.CopyFrom(to_tensor(_as_input(b.tensor, info, batch=False)))
    if not 1 <= max_sis <= 2**31 - 1:
        raise InvalidInput(f"max_sis must be at least 1, got {max_sis}")
    req.max_sis = max_sis
    if mode not in _MODE:
        raise InvalidInput(f"mode must be 'exact' or 'batched', got {mode!r}")
    req.mode = _MODE[mode]
    if batch_k is not None:
        if mode != "batched" or batch_k < 1:
            raise InvalidInput("batch_k (>= 1) goes with mode='batched'")
        req.batch_k = batch_k
    elif mode == "batched":
        raise InvalidInput("mode='batched' needs batch_k, the features removed per BackSelect step")
    if max_evaluations is not None:
        if max_evaluations < 1:
            raise InvalidInput(f"max_evaluations must be at least 1, got {max_evaluations}")
        req.max_evaluations = max_evaluations
    req.return_backselect = return_backselect
    req.allow_partial = allow_partial
    return req


def list_models_request() -> Any:
    return pb.ListModelsRequest()


def health_request(service: str) -> Any:
    return health_pb2.HealthCheckRequest(service=service)


# -- responses --------------------------------------------------------------------------------

_OUTPUT_KIND = {pb.LOGITS: "logits", pb.PROBABILITIES: "probabilities", pb.SCORES: "scores"}
_FEATURE_NAME = {v: k for k, v in _FEATURE.items()}
_BASELINE_NAME = {pb.ZEROS: "zeros", pb.MEAN: "mean", pb.CONSTANT: "constant", pb.CUSTOM: "tensor", pb.BLUR: "blur"}
_STATUS: dict[int, SISStatus] = {
    pb.FOUND: "found",
    pb.NOT_CONFIDENT: "not_confident",
    pb.BASELINE_SUFFICIENT: "baseline_sufficient",
    pb.PARTIAL: "partial",
}
_VARIANT_NAME: dict[int, VariantName] = {pb.DENSE: "dense", pb.PRUNED: "pruned"}


def _model_file(m: Any) -> ModelFile:
    return ModelFile(
        path=m.path,
        sha256=m.sha256,
        parameter_count=m.parameter_count,
        nonzero_parameter_count=m.nonzero_parameter_count,
        execution_provider=m.execution_provider,
        infer_name=m.infer_name,
        ready=m.ready,
    )


def parse_pair(p: Any) -> PairInfo:
    d = p.explain_defaults
    return PairInfo(
        name=p.name,
        input_name=p.input_name,
        input_shape=tuple(int(s) for s in p.input_shape),
        input_dtype=dtype_of(p.input_dtype),
        output_name=p.output_name,
        output_kind=_OUTPUT_KIND.get(p.output_kind, "unspecified"),
        num_outputs=p.num_outputs,
        class_labels=tuple(p.class_labels),
        dense=_model_file(p.dense),
        pruned=_model_file(p.pruned),
        prune_ratio=p.prune_ratio,
        max_batch_size=p.max_batch_size,
        explain_defaults=ExplainDefaults(
            threshold=d.threshold,
            threshold_relative=d.threshold_relative,
            features=_FEATURE_NAME.get(d.features, "unspecified"),
            patch=(d.patch_height, d.patch_width),
            baseline=_BASELINE_NAME.get(d.baseline, "unspecified"),
            max_evaluations=d.max_evaluations,
            num_features=d.num_features,
        ),
        image=ImageDefaults(scale=p.image.scale if p.HasField("image") else 1.0 / 255.0, invert=p.image.invert),
        control=_model_file(p.control) if p.HasField("control") else None,
        verdict_reference=p.verdict_reference or "dense-only",
    )


_VERDICT_NAME = {pb.HEALTHY: "healthy", pb.DAMAGED: "damaged", pb.INSUFFICIENT_DATA: "insufficient_data"}


def pair_health_request(pair: str) -> Any:
    if not isinstance(pair, str) or not pair:
        raise InvalidInput("pair must be a non-empty string")
    return pb.PairHealthRequest(pair=pair)


def parse_pair_health(r: Any) -> PairHealth:
    return PairHealth(
        pair=r.pair,
        verdict=_VERDICT_NAME.get(r.verdict, "unspecified"),
        reference=r.reference,
        samples=int(r.samples),
        samples_needed=int(r.samples_needed),
        min_samples=int(r.min_samples),
        confidence=float(r.confidence),
        window=int(r.window),
        measures=tuple(
            MeasureExcess(
                name=m.name, source=m.source, deciding=m.deciding, margin=m.margin, samples=int(m.samples),
                pruned_mean=m.pruned_mean, reference_mean=m.reference_mean, reference=m.reference,
                estimate=m.estimate, lower=m.lower, upper=m.upper, samples_needed=int(m.samples_needed),
                damaged=m.damaged,
            )
            for m in r.measures
        ),
        request_id=r.request_id,
    )


def parse_models(resp: Any) -> list[PairInfo]:
    return [parse_pair(p) for p in resp.pairs]


def _variant_prediction(v: Any) -> VariantPrediction:
    return VariantPrediction(
        probabilities=from_tensor(v.probabilities).astype(np.float32, copy=False),
        top1=np.asarray(v.top1, dtype=np.int32),
        top1_probability=np.asarray(v.top1_probability, dtype=np.float32),
    )


def parse_prediction(resp: Any) -> Prediction:
    both = len(resp.top1_agree) > 0
    return Prediction(
        pair=resp.pair,
        dense=_variant_prediction(resp.dense) if resp.HasField("dense") else None,
        pruned=_variant_prediction(resp.pruned) if resp.HasField("pruned") else None,
        top1_agree=np.asarray(resp.top1_agree, dtype=bool) if both else None,
        confidence_gap=np.asarray(resp.confidence_gap, dtype=np.float32) if both else None,
        request_id=resp.request_id,
    )


def _sis(s: Any) -> SIS:
    mask = from_tensor(s.mask)
    return SIS(features=np.asarray(s.features, dtype=np.int32), score=s.score, mask=mask.astype(bool, copy=False))


def _variant_explanation(v: Any) -> VariantExplanation:
    return VariantExplanation(
        status=_STATUS.get(v.status, "unspecified"),
        sis=tuple(_sis(s) for s in v.sis),
        confidence=v.confidence,
        top1=v.top1,
        baseline_score=v.baseline_score,
        evaluations=v.evaluations,
        seconds=v.seconds,
        backselect=tuple(
            BackSelectTrace(order=np.asarray(b.order, dtype=np.int32), scores=np.asarray(b.scores, dtype=np.float64))
            for b in v.backselect
        ),
    )


def _agreement(a: Any) -> Agreement:
    return Agreement(
        top1_agree=a.top1_agree,
        confidence_gap=a.confidence_gap,
        iou_first=a.iou_first,
        iou_union=a.iou_union,
        dense_sis_sufficient_for_pruned=(
            a.dense_sis_sufficient_for_pruned if a.HasField("dense_sis_sufficient_for_pruned") else None
        ),
        pruned_sis_sufficient_for_dense=(
            a.pruned_sis_sufficient_for_dense if a.HasField("pruned_sis_sufficient_for_dense") else None
        ),
        dense_sis_score_on_pruned=a.dense_sis_score_on_pruned,
        pruned_sis_score_on_dense=a.pruned_sis_score_on_dense,
        rank_correlation=a.rank_correlation,
        dense_sis_size=a.dense_sis_size,
        pruned_sis_size=a.pruned_sis_size,
        divergent=a.divergent,
        reasons=tuple(pb.DivergenceReason.Name(r).lower() for r in a.reasons if r in pb.DivergenceReason.values()),
    )


def parse_explanation(resp: Any) -> Explanation:
    return Explanation(
        pair=resp.pair,
        target=resp.target,
        threshold=resp.threshold,
        num_features=resp.num_features,
        dense=_variant_explanation(resp.dense) if resp.HasField("dense") else None,
        pruned=_variant_explanation(resp.pruned) if resp.HasField("pruned") else None,
        agreement=_agreement(resp.agreement) if resp.HasField("agreement") else None,
        cached=resp.cached,
        request_id=resp.request_id,
        group_map=from_tensor(resp.group_map).astype(np.int32, copy=False) if resp.HasField("group_map") else None,
    )


def parse_event(event: Any) -> ExplainProgress | Explanation:
    kind = event.WhichOneof("event")
    if kind == "result":
        return parse_explanation(event.result)
    if kind == "progress":
        p = event.progress
        return ExplainProgress(
            variant=_VARIANT_NAME.get(p.variant, "dense"),
            round=p.round,
            step=p.step,
            features_left=p.features_left,
            evaluations=p.evaluations,
        )
    raise ServerError(f"the server sent an explain event of unknown kind {kind!r}")


def check_open(closed: bool) -> None:
    if closed:
        raise SISGuardError("the client is closed; make a new one")


def no_result() -> ServerError:
    return ServerError("the explain stream ended without a result", code="UNKNOWN")


def parse_health(resp: Any) -> HealthStatus:
    names: dict[int, HealthStatus] = {
        health_pb2.HealthCheckResponse.SERVING: "SERVING",
        health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
        health_pb2.HealthCheckResponse.SERVICE_UNKNOWN: "SERVICE_UNKNOWN",
    }
    return names.get(resp.status, "UNKNOWN")
