"""The asyncio client: the same methods as :class:`Client`, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Unpack

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2_grpc
from numpy.typing import ArrayLike

from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc

from . import _base
from ._base import DEFAULT_TARGET, DEFAULT_TIMEOUT, TLS, UNSET, ExplainOptions, RetryPolicy, Timeout
from ._errors import translate
from ._models import ExplainProgress, Explanation, HealthStatus, PairHealth, PairInfo, Prediction, Variants


class AsyncClient:
    """An asyncio connection to a sisguard server; arguments as for :class:`Client`.

    >>> async with AsyncClient("127.0.0.1:50051") as client:  # doctest: +SKIP
    ...     explanation = await client.explain("digits", x)
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
            grpc.aio.secure_channel(self._settings.target, creds, opts)
            if creds is not None
            else grpc.aio.insecure_channel(self._settings.target, opts)
        )
        self._stub = pb_grpc.SISGuardStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._pairs: dict[str, PairInfo] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncClient({self._settings.target!r}, tls={self._settings.tls is not None})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled, later calls raise :class:`SISGuardError`."""
        self._closed = True
        await self._channel.close()

    # -- transport ----------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Any], request: Any, timeout: Timeout) -> Any:
        _base.check_open(self._closed)
        try:
            return await method(request, **self._settings.call_kwargs(timeout))
        except grpc.RpcError as err:
            raise translate(err) from err

    async def _info(self, pair: str, timeout: Timeout) -> PairInfo | None:
        if pair not in self._pairs:
            await self.models(timeout=timeout)
        return self._pairs.get(pair)

    # -- API ----------------------------------------------------------------------------------

    async def models(self, *, timeout: Timeout = UNSET) -> list[PairInfo]:
        """Every served pair: signature, files, providers, explain defaults."""
        pairs = _base.parse_models(await self._call(self._stub.ListModels, _base.list_models_request(), timeout))
        self._pairs = {p.name: p for p in pairs}
        return pairs

    async def predict(
        self, pair: str, x: ArrayLike, *, variant: Variants = "both", timeout: Timeout = UNSET
    ) -> Prediction:
        """Run a batch ``[batch, *input_shape]`` (or one input) through the dense and/or pruned model."""
        request = _base.predict_request(pair, x, variant, await self._info(pair, timeout))
        return _base.parse_prediction(await self._call(self._stub.Predict, request, timeout))

    async def explain(
        self, pair: str, x: ArrayLike, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Explanation:
        """Sufficient input subsets of one input for both models and how far they agree."""
        request = _base.explain_request(pair, x, await self._info(pair, timeout), **options)
        return _base.parse_explanation(await self._call(self._stub.Explain, request, timeout))

    async def explain_stream(
        self, pair: str, x: ArrayLike, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> AsyncIterator[ExplainProgress | Explanation]:
        """As :meth:`explain`, yielding :class:`ExplainProgress` events and then the :class:`Explanation`."""
        request = _base.explain_request(pair, x, await self._info(pair, timeout), **options)
        _base.check_open(self._closed)
        call = self._stub.ExplainStream(request, **self._settings.call_kwargs(timeout))
        try:
            async for event in call:
                parsed = _base.parse_event(event)
                yield parsed
                if isinstance(parsed, Explanation):
                    return
        except grpc.RpcError as err:
            raise translate(err) from err
        finally:
            call.cancel()
        raise _base.no_result()

    async def pair_health(self, pair: str, *, timeout: Timeout = UNSET) -> PairHealth:
        """The pair's divergence verdict and its evidence (excess and interval per measure)."""
        response = await self._call(self._stub.PairHealth, _base.pair_health_request(pair), timeout)
        return _base.parse_pair_health(response)

    async def health(self, service: str = "", *, timeout: Timeout = UNSET) -> HealthStatus:
        """The gRPC health status of the server (``service=""``) or of one service."""
        return _base.parse_health(await self._call(self._health.Check, _base.health_request(service), timeout))
