"""The blocking client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Unpack

import grpc

from . import _codec, _options
from . import text as _text
from ._base_client import BaseClient
from ._errors import NotFound, translated
from ._options import UNSET, ExplainOptions, Inputs, Timeout
from ._results import ExplainProgress, Explanation, HealthStatus, PairHealth, PairInfo, Prediction, Variants


class Client(BaseClient):
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

    @staticmethod
    def _open(target: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]) -> Any:
        if credentials is None:
            return grpc.insecure_channel(target, options)
        return grpc.secure_channel(target, credentials, options)

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
        kwargs = self._call_options(timeout)
        with translated():
            return method(request, **kwargs)

    def _info(self, pair: str, timeout: Timeout) -> PairInfo | None:
        if pair not in self._pairs:
            self.models(timeout=timeout)
        return self._pairs.get(pair)

    # -- API ----------------------------------------------------------------------------------

    def models(self, *, timeout: Timeout = UNSET) -> list[PairInfo]:
        """Every served pair: signature, files, providers, explain defaults."""
        return self._remember(
            _codec.parse_models(self._call(self._stub.ListModels, _options.list_models_request(), timeout))
        )

    def predict(self, pair: str, x: Inputs, *, variant: Variants = "both", timeout: Timeout = UNSET) -> Prediction:
        """Run a batch ``[batch, *input_shape]`` (or one input) through the dense and/or pruned model."""
        request = _options.predict_request(pair, x, variant, self._info(pair, timeout))
        return _codec.parse_prediction(self._call(self._stub.Predict, request, timeout))

    def explain(
        self, pair: str, x: Inputs, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Explanation:
        """Sufficient input subsets of one input for both models and how far they agree.

        See :class:`ExplainOptions` for ``target``, ``threshold``, ``features``, ``baseline``, ...
        """
        info = self._info(pair, timeout)
        request = _options.explain_request(pair, x, info, **options)
        return _codec.with_names(_codec.parse_explanation(self._call(self._stub.Explain, request, timeout)), info)

    def explain_stream(
        self, pair: str, x: Inputs, *, timeout: Timeout = UNSET, **options: Unpack[ExplainOptions]
    ) -> Iterator[ExplainProgress | Explanation]:
        """As :meth:`explain`, yielding :class:`ExplainProgress` events and then the :class:`Explanation`.

        Leaving the loop early cancels the call.
        """
        info = self._info(pair, timeout)
        request = _options.explain_request(pair, x, info, **options)
        call = self._stub.ExplainStream(request, **self._call_options(timeout))
        try:
            with translated():
                for event in call:
                    parsed = _codec.parse_event(event)
                    if isinstance(parsed, Explanation):
                        yield _codec.with_names(parsed, info)
                        return
                    yield parsed
        finally:
            call.cancel()
        raise _codec.no_result()

    def predict_text(self, pair: str, text: str, *, variant: Variants = "both", timeout: Timeout = UNSET) -> Prediction:
        """:meth:`predict` on one raw text, tokenized with the pair's ``tokenizer.json`` (needs ``tokenizers``)."""
        info = self._known(pair, timeout)
        return self.predict(pair, _text.text_inputs(info, _text.tokenize(info, text), batch=True), variant=variant,
                            timeout=timeout)

    def explain_text(
        self,
        pair: str,
        text: str,
        *,
        words: bool = False,
        timeout: Timeout = UNSET,
        **options: Unpack[ExplainOptions],
    ) -> _text.TextExplanation:
        """:meth:`explain` on one raw text: token features (``words=True``: the sub-word tokens of a
        word form one feature); the answer can print the text with the SIS highlighted."""
        info = self._known(pair, timeout)
        tokens = _text.tokenize(info, text)
        if words:
            options["features"] = _text.word_groups(tokens)
        ex = self.explain(pair, _text.text_inputs(info, tokens, batch=False), timeout=timeout, **options)
        return _text.TextExplanation(tokens, ex)

    def _known(self, pair: str, timeout: Timeout) -> PairInfo:
        info = self._info(pair, timeout)
        if info is None:
            raise NotFound(f"unknown pair {pair!r}")
        return info

    def pair_health(self, pair: str, *, timeout: Timeout = UNSET) -> PairHealth:
        """The pair's divergence verdict and its evidence (excess and interval per measure)."""
        return _codec.parse_pair_health(self._call(self._stub.PairHealth, _options.pair_health_request(pair), timeout))

    def health(self, service: str = "", *, timeout: Timeout = UNSET) -> HealthStatus:
        """The gRPC health status of the server (``service=""``) or of one service."""
        return _codec.parse_health(self._call(self._health.Check, _options.health_request(service), timeout))
