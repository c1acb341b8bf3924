"""The asyncio client: the same methods as :class:`Client`, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Unpack

import grpc
import grpc.aio

from . import _codec, _options
from . import text as _text
from ._base_client import BaseClient
from ._errors import NotFound, translated
from ._options import UNSET, ExplainOptions, Inputs, Timeout
from ._results import ExplainProgress, Explanation, HealthStatus, PairHealth, PairInfo, Prediction, Variants


class AsyncClient(BaseClient):
    """An asyncio connection to a sisguard server; arguments as for :class:`Client`.

    >>> async with AsyncClient("127.0.0.1:50051") as client:  # doctest: +SKIP
    ...     explanation = await client.explain("digits", x)
    """

    @staticmethod
    def _open(target: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]) -> Any:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options)
        return grpc.aio.secure_channel(target, credentials, options)

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
        kwargs = self._call_options(timeout)
        with translated():
            return await method(request, **kwargs)

    async def _info(self, pair: str, timeout: Timeout) -> PairInfo | None:
        if pair not in self._pairs:
            await self.models(timeout=timeout)
        return self._pairs.get(pair)

    # -- API ----------------------------------------------------------------------------------

    async def models(self, *, timeout: Timeout = UNSET) -> list[PairInfo]:
        """Every served pair: signature, files, providers, explain defaults."""
        response = await self._call(self._stub.ListModels, _options.list_models_request(), timeout)
        return self._remember(_codec.parse_models(response))

    async def predict(
        self, pair: str, x: Inputs, *, variant: Variants = "both", timeout: Timeout = UNSET
    ) -> Prediction:
        """Run a batch ``[batch, *input_shape]`` (or one input) through the dense and/or pruned model."""
        request = _options.predict_request(pair, x, variant, await self._info(pair, timeout))
        return _codec.parse_prediction(await self._call(self._stub.Predict, request, timeout))

    async def explain(
        self, pair: str, x: Inputs, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Explanation:
        """Sufficient input subsets of one input for both models and how far they agree."""
        info = await self._info(pair, timeout)
        request = _options.explain_request(pair, x, info, **options)
        return _codec.with_names(_codec.parse_explanation(await self._call(self._stub.Explain, request, timeout)), info)

    async def explain_stream(
        self, pair: str, x: Inputs, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> AsyncIterator[ExplainProgress | Explanation]:
        """As :meth:`explain`, yielding :class:`ExplainProgress` events and then the :class:`Explanation`."""
        info = await self._info(pair, timeout)
        request = _options.explain_request(pair, x, info, **options)
        call = self._stub.ExplainStream(request, **self._call_options(timeout))
        try:
            with translated():
                async for event in call:
                    parsed = _codec.parse_event(event)
                    if isinstance(parsed, Explanation):
                        yield _codec.with_names(parsed, info)
                        return
                    yield parsed
        finally:
            call.cancel()
        raise _codec.no_result()

    async def predict_text(
        self, pair: str, text: str, *, variant: Variants = "both", timeout: Timeout = UNSET
    ) -> Prediction:
        """:meth:`predict` on one raw text, tokenized with the pair's ``tokenizer.json`` (needs ``tokenizers``)."""
        info = await self._known(pair, timeout)
        inputs = _text.text_inputs(info, _text.tokenize(info, text), batch=True)
        return await self.predict(pair, inputs, variant=variant, timeout=timeout)

    async def explain_text(
        self,
        pair: str,
        text: str,
        *,
        words: bool = False,
        timeout: Timeout = UNSET,
        **options: Unpack[ExplainOptions],
    ) -> _text.TextExplanation:
        """As :meth:`Client.explain_text`."""
        info = await self._known(pair, timeout)
        tokens = _text.tokenize(info, text)
        if words:
            options["features"] = _text.word_groups(tokens)
        ex = await self.explain(pair, _text.text_inputs(info, tokens, batch=False), timeout=timeout, **options)
        return _text.TextExplanation(tokens, ex)

    async def _known(self, pair: str, timeout: Timeout) -> PairInfo:
        info = await self._info(pair, timeout)
        if info is None:
            raise NotFound(f"unknown pair {pair!r}")
        return info

    async def pair_health(self, pair: str, *, timeout: Timeout = UNSET) -> PairHealth:
        """The pair's divergence verdict and its evidence (excess and interval per measure)."""
        response = await self._call(self._stub.PairHealth, _options.pair_health_request(pair), timeout)
        return _codec.parse_pair_health(response)

    async def health(self, service: str = "", *, timeout: Timeout = UNSET) -> HealthStatus:
        """The gRPC health status of the server (``service=""``) or of one service."""
        return _codec.parse_health(await self._call(self._health.Check, _options.health_request(service), timeout))

