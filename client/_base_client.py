"""What :class:`Client` and :class:`AsyncClient` share: construction (options checked once, the
channel, the stubs), the per-call options, the pair cache and the closed check. The two differ
only in the channel they open and in whether their calls are awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc

from ._errors import SISGuardError
from ._options import DEFAULT_TARGET, DEFAULT_TIMEOUT, TLS, RetryPolicy, Settings, Timeout
from ._results import PairInfo

__all__ = ["BaseClient"]


class BaseClient:
    """A connection to a sisguard server, without the calls; arguments as for :class:`Client`."""

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
        self._settings = Settings.build(target, tls, token, timeout, retries, options)
        settings = self._settings
        self._channel = self._open(settings.target, settings.credentials(), settings.channel_options())
        self._stub = pb_grpc.SISGuardStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._pairs: dict[str, PairInfo] = {}
        self._closed = False

    @staticmethod
    def _open(target: str, credentials: grpc.ChannelCredentials | None, options: list[tuple[str, Any]]) -> Any:
        """The channel: blocking or asyncio, secure when there are credentials."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings.target!r}, tls={self._settings.tls is not None})"

    def _call_options(self, timeout: Timeout) -> dict[str, Any]:
        """``timeout`` and ``metadata`` for one stub call; refused once the client is closed."""
        if self._closed:
            raise SISGuardError("the client is closed; make a new one")
        return self._settings.call_kwargs(timeout)

    def _remember(self, pairs: list[PairInfo]) -> list[PairInfo]:
        """Keep the served pairs' signatures: inputs are cast to the pair's dtype before sending."""
        self._pairs = {p.name: p for p in pairs}
        return pairs
