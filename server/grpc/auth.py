"""Bearer-token authentication for every RPC except the health service.

Tokens come from ``tokens_file`` (one per line, ``#`` comments), ``tokens`` in the config, or
``SISGUARD_TOKENS`` (comma-separated). A call must carry ``authorization: Bearer <token>``;
otherwise it ends with UNAUTHENTICATED before any handler runs. Tokens are compared in
constant time against *every* accepted token (no early exit that would reveal which one
matched or how much of it), and they are never logged: a refusal logs the method and the peer.

``grpc.health.v1.Health`` stays open so that kubelet probes, load balancers and Docker
``HEALTHCHECK`` work without a secret. Server reflection is *not* exempt: it describes the
whole API, so it needs a token like any other call (``grpcurl -H 'authorization: Bearer …'``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from sisguard.server.config import ConfigError, Settings

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
MESSAGE = "missing or invalid bearer token"
MIN_TOKEN_LENGTH = 16


def read_tokens_file(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read tokens_file {path}: {exc.strerror or exc}") from exc
    return [t for t in (line.split("#", 1)[0].strip() for line in text.splitlines()) if t]


def accepted_tokens(settings: Settings) -> list[bytes]:
    """Every accepted token from the settings and the tokens file; empty means auth is off."""
    tokens = [t.get_secret_value() for t in settings.tokens]
    if settings.tokens_file is not None:
        tokens += read_tokens_file(settings.tokens_file)
    for t in tokens:
        if len(t) < MIN_TOKEN_LENGTH or any(c.isspace() for c in t) or not t.isprintable():
            # The message must not carry the token itself.
            raise ConfigError(
                f"bearer tokens must be at least {MIN_TOKEN_LENGTH} printable characters without spaces "
                f"(one of the {len(tokens)} configured tokens is not)"
            )
    return [t.encode() for t in dict.fromkeys(tokens)]


def token_matches(presented: bytes, accepted: Iterable[bytes]) -> bool:
    """Constant-time membership: compares against every token, no early exit."""
    ok = False
    for token in accepted:
        ok |= hmac.compare_digest(presented, token)
    return ok


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
            scheme, _, token = raw.partition(b" ")
            if scheme.lower() != b"bearer":
                return None
            return token.strip()
    return None


def _refuse(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that ends the call with UNAUTHENTICATED."""

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
        yield  # pragma: no cover - abort raises

    kw = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream, **kw)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, **kw)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kw)
    return grpc.unary_unary_rpc_method_handler(abort, **kw)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call without an accepted bearer token, except the health service."""

    def __init__(self, tokens: list[bytes]) -> None:
        if not tokens:
            raise ValueError("TokenAuthInterceptor needs at least one token")
        self._tokens = list(tokens)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(EXEMPT_PREFIXES):
            return await continuation(handler_call_details)
        presented = _bearer(handler_call_details.invocation_metadata)
        handler = await continuation(handler_call_details)
        if presented is not None and token_matches(presented, self._tokens):
            return handler
        log.info("refused %s: %s bearer token", method, "no" if presented is None else "invalid")
        if handler is None:  # unknown method: answer UNAUTHENTICATED, not UNIMPLEMENTED (no API probing)
            return grpc.unary_unary_rpc_method_handler(_refuse_unknown)
        return _refuse(handler)


async def _refuse_unknown(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
