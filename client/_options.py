"""What a caller passes in, checked once and turned into requests: connection options (TLS,
retries, timeouts, token) and each call's options, built into ``sisguard.v1`` requests with the
shared wire codec. Pure; nothing here talks to the network.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import grpc
import numpy as np
from grpc_health.v1 import health_pb2
from numpy.typing import ArrayLike, NDArray

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.wire import BASELINES, FEATURES, MODES, VARIANTS, to_tensor

from ._errors import InvalidInput, translated
from ._features import Baseline, Features
from ._results import PairInfo, Variants

__all__ = ["TLS", "UNSET", "ExplainOptions", "RetryPolicy", "Settings", "Timeout"]

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

#: one input or a batch; for a several-input model, a mapping of input name to tensor
Inputs = ArrayLike | Mapping[str, ArrayLike]


def _fits(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """One input's shape: ``expected`` with any length on a dynamic (-1) axis."""
    return len(shape) == len(expected) and all(e < 0 or s == e for s, e in zip(shape, expected, strict=True))


def _as_input(x: ArrayLike, info: PairInfo | None, *, batch: bool) -> NDArray[Any]:
    """``x`` as the pair expects it: its dtype (when the cast keeps the kind of values) and, for
    batches, a batch axis added to a single input."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input must be array-like: {exc}") from exc
    if info is None:
        return arr
    if batch and _fits(arr.shape, info.input_shape):
        arr = arr[None]
    if arr.dtype != info.input_dtype and np.can_cast(arr.dtype, info.input_dtype, casting="same_kind"):
        arr = arr.astype(info.input_dtype)
    return arr


def _named_input(name: str, x: ArrayLike, info: PairInfo | None, *, batch: bool) -> Any:
    """One named tensor of a several-input model, cast to that input's dtype when the pair is known."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input {name} must be array-like: {exc}") from exc
    spec = None if info is None else next((i for i in info.inputs if i.name == name), None)
    if spec is not None:
        if batch and _fits(arr.shape, spec.shape):
            arr = arr[None]
        if arr.dtype != spec.dtype and np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
            arr = arr.astype(spec.dtype)
    return to_tensor(arr, f"input {name}")


def features_input(info: PairInfo | None) -> str | None:
    """Name of the input carrying the features (None when the pair is not known)."""
    if info is None:
        return None
    return next((i.name for i in info.inputs if i.role == "features"), info.input_name)


@translated()
def predict_request(pair: str, x: ArrayLike | Mapping[str, ArrayLike], variant: Variants, info: PairInfo | None) -> Any:
    """``x``: the rows, or (a several-input model) a mapping of input name to rows."""
    if isinstance(x, Mapping):
        named = {str(k): _named_input(str(k), v, info, batch=True) for k, v in x.items()}
        return pb.PredictRequest(pair=pair, named_inputs=named, variant=VARIANTS.code(variant))
    inputs = to_tensor(_as_input(x, info, batch=True), "input")
    return pb.PredictRequest(pair=pair, inputs=inputs, variant=VARIANTS.code(variant))


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


@translated()
def explain_request(
    pair: str,
    x: ArrayLike | Mapping[str, ArrayLike],
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
    if isinstance(x, Mapping):
        feature = features_input(info)
        named = {str(k): v for k, v in x.items()}
        req = pb.ExplainRequest(pair=pair, variants=VARIANTS.code(variants))
        if feature is not None and feature in named:
            req.input.CopyFrom(_named_input(feature, named.pop(feature), info, batch=False))
        for k, v in named.items():
            req.named_inputs[k].CopyFrom(_named_input(k, v, info, batch=False))
    else:
        req = pb.ExplainRequest(
            pair=pair, input=to_tensor(_as_input(x, info, batch=False), "input"), variants=VARIANTS.code(variants)
        )
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
        req.features = FEATURES.code(f.kind)
        if f.patch is not None:
            req.patch_height, req.patch_width = f.patch
        if f.map is not None:
            req.group_map.CopyFrom(to_tensor(f.map, "group map"))
    if baseline is not None:
        b = Baseline.coerce(baseline)
        req.baseline = BASELINES.code(b.kind)
        if b.kind == "constant":
            req.baseline_constant = b.value
        if b.tensor is not None:
            req.baseline_tensor.CopyFrom(to_tensor(_as_input(b.tensor, info, batch=False), "baseline tensor"))
    if not 1 <= max_sis <= 2**31 - 1:
        raise InvalidInput(f"max_sis must be at least 1, got {max_sis}")
    req.max_sis = max_sis
    req.mode = MODES.code(mode)
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


def pair_health_request(pair: str) -> Any:
    if not isinstance(pair, str) or not pair:
        raise InvalidInput("pair must be a non-empty string")
    return pb.PairHealthRequest(pair=pair)
