"""The blocking client."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Unpack

import grpc
from grpc_health.v1 import health_pb2_grpc
from numpy.typing import ArrayLike

from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc

from . import _base
from ._base import DEFAULT_TARGET, DEFAULT_TIMEOUT, TLS, UNSET, ExplainOptions, RetryPolicy, Timeout
from ._errors import translate
from ._models import ExplainProgress, Explanation, HealthStatus, PairHealth, PairInfo, Prediction, Variants


class Client:
    """A blocking connection to a sisguard server.

    Args:
        target: ``host:port`` of the server.
        tls: ``True`` for TLS with the system's root certificates, a :class:`TLS` for a custom CA
            and/or mutual TLS, ``False``/``None`` for plaintext.
        token: bearer token sent as ``authorization: Bearer <token>``.
        timeout: seconds a call may take, retries included (``None``: no limit); each method
            takes a ``timeout=`` that overrides it for that call.
        retries: retries on UNAVAILABLE (and RESOURCE_EXHAUSTED where safe) with exponential
            backoff, 0..4, or a :class:`RetryPolicy`.
        options: extra gRPC channel options, e.g. ``[("grpc.keepalive_time_ms", 30000)]``.

    >>> with Client("127.0.0.1:50051") as client:  # doctest: +SKIP
    ...     client.predict("digits", x).dense.top1
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tls: bool | TLS | None = None,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retries: int | RetryPolicy = 3,
        options: Sequence[tuple[str, Any]] | None = None,
    ) -> None:
        self._settings = _base.Settings.build(target, tls, token, timeout, retries, options)
        creds = self._settings.credentials()
        opts = self._settings.channel_options()
        self._channel = (
            grpc.secure_channel(self._settings.target, creds, opts)
            if creds is not None
            else grpc.insecure_channel(self._settings.target, opts)
        )
        self._stub = pb_grpc.SISGuardStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._pairs: dict[str, PairInfo] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"Client({self._settings.target!r}, tls={self._settings.tls is not None})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled, later calls raise :class:`SISGuardError`."""
        self._closed = True
        self._channel.close()

    # -- transport ----------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], request: Any, timeout: Timeout) -> Any:
        _base.check_open(self._closed)
        try:
            return method(request, **self._settings.call_kwargs(timeout))
        except grpc.RpcError as err:
            raise translate(err) from err

    def _info(self, pair: str, timeout: Timeout) -> PairInfo | None:
        if pair not in self._pairs:
            self.models(timeout=timeout)
        return self._pairs.get(pair)

    # -- API ----------------------------------------------------------------------------------

    def models(self, *, timeout: Timeout = UNSET) -> list[PairInfo]:
        """Every served pair: signature, files, providers, explain defaults."""
        pairs = _base.parse_models(self._call(self._stub.ListModels, _base.list_models_request(), timeout))
        self._pairs = {p.name: p for p in pairs}
        return pairs

    def predict(self, pair: str, x: ArrayLike, *, variant: Variants = "both", timeout: Timeout = UNSET) -> Prediction:
        """Run a batch ``[batch, *input_shape]`` (or one input) through the dense and/or pruned model."""
        request = _base.predict_request(pair, x, variant, self._info(pair, timeout))
        return _base.parse_prediction(self._call(self._stub.Predict, request, timeout))

    def explain(
        self, pair: str, x: ArrayLike, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Explanation:
        """Sufficient input subsets of one input for both models and how far they agree.

        See :class:`ExplainOptions` for ``target``, ``threshold``, ``features``, ``baseline``, ...
        """
        request = _base.explain_request(pair, x, self._info(pair, timeout), **options)
        return _base.parse_explanation(self._call(self._stub.Explain, request, timeout))

    def explain_stream(
        self, pair: str, x: ArrayLike, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Iterator[ExplainProgress | Explanation]:
        """As :meth:`explain`, yielding :class:`ExplainProgress` events and then the :class:`Explanation`.

        Leaving the loop early cancels the call.
        """
        request = _base.explain_request(pair, x, self._info(pair, timeout), **options)
        _base.check_open(self._closed)
        call = self._stub.ExplainStream(request, **self._settings.call_kwargs(timeout))
        try:
            for event in call:
                parsed = _base.parse_event(event)
                yield parsed
                if isinstance(parsed, Explanation):
                    return
        except grpc.RpcError as err:
            raise translate(err) from err
        finally:
            call.cancel()
        raise _base.no_result()

    def pair_health(self, pair: str, *, timeout: Timeout = UNSET) -> PairHealth:
        """The pair's divergence verdict and its evidence (excess and interval per measure)."""
        return _base.parse_pair_health(self._call(self._stub.PairHealth, _base.pair_health_request(pair), timeout))

    def health(self, service: str = "", *, timeout: Timeout = UNSET) -> HealthStatus:
        """The gRPC health status of the server (``service=""``) or of one service."""
        return _base.parse_health(self._call(self._health.Check, _base.health_request(service), timeout))
