"""Bearer-token authentication for every RPC except the health service.

Tokens come from ``tokens_file`` (one per line, ``#`` comments), ``tokens`` in the config and
``SISGUARD_TOKENS`` (comma-separated); all sources are merged. A source that is set but holds
no token is refused at start-up, so an empty Secret cannot switch authentication off. A call
must carry ``authorization: Bearer <token>``; otherwise it ends with UNAUTHENTICATED before any
handler runs. Tokens are compared in constant time against *every* accepted token (no early
exit that would reveal which one matched or how much of it), and they are never logged: a
refusal logs the method and the peer.

``grpc.health.v1.Health`` stays open so that kubelet probes, load balancers and Docker
``HEALTHCHECK`` work without a secret. Server reflection is *not* exempt: it describes the
whole API, so it needs a token like any other call (``grpcurl -H 'authorization: Bearer …'``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from sisguard.server.config import ConfigError, Settings

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
MESSAGE = "missing or invalid bearer token"
MIN_TOKEN_LENGTH = 16


def read_tokens_file(path: Path) -> list[str]:
    """The tokens of ``path``; a file that holds none is refused (it must not switch auth off)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read tokens_file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"tokens_file {path} is not UTF-8 text") from None
    tokens = [t for t in (line.split("#", 1)[0].strip() for line in text.splitlines()) if t]
    if not tokens:
        raise ConfigError(
            f"tokens_file {path} holds no token (empty or only comments); "
            "put one token per line, or remove tokens_file to run without tokens"
        )
    return tokens


@dataclass(frozen=True)
class TokenSet:
    """The accepted tokens and where they came from (counts only; tokens are never logged)."""

    tokens: list[bytes]
    from_settings: int  # ``tokens`` in the config and SISGUARD_TOKENS, merged
    from_file: int

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def describe(self) -> str:
        """One start-up line: whether auth is on and how many tokens are loaded."""
        if not self.tokens:
            return "auth off: no bearer tokens configured, every caller is accepted (see docs/security.md)"
        return (
            f"auth on: {len(self.tokens)} bearer token{'s' if len(self.tokens) != 1 else ''} loaded "
            f"({self.from_settings} from tokens/SISGUARD_TOKENS, {self.from_file} from tokens_file)"
        )


def load_tokens(settings: Settings) -> TokenSet:
    """Every accepted token from the settings (YAML and SISGUARD_TOKENS) and the tokens file."""
    listed = [t.get_secret_value() for t in settings.tokens]
    from_file = read_tokens_file(settings.tokens_file) if settings.tokens_file is not None else []
    tokens = [*listed, *from_file]
    for t in tokens:
        if len(t) < MIN_TOKEN_LENGTH or any(c.isspace() for c in t) or not t.isprintable():
            # The message must not carry the token itself.
            raise ConfigError(
                f"bearer tokens must be at least {MIN_TOKEN_LENGTH} printable characters without spaces "
                f"(one of the {len(tokens)} configured tokens is not)"
            )
    return TokenSet([t.encode() for t in dict.fromkeys(tokens)], len(listed), len(from_file))


def accepted_tokens(settings: Settings) -> list[bytes]:
    """Every accepted token; empty means auth is off."""
    return load_tokens(settings).tokens


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


async def _refuse_unary(requests: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)


async def _refuse_streaming(requests: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)
    yield  # pragma: no cover - abort raises


def _refuse(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler that ends the call with UNAUTHENTICATED *without reading its request*.

    It is registered as request-streaming whatever the method is: gRPC then starts it before
    any message arrives, and the status goes out while the body is still held back by flow
    control. A unary handler would first receive and buffer the whole body (up to the
    message size limit) for every refused call.
    """
    if handler is not None and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse_streaming)
    return grpc.stream_unary_rpc_method_handler(_refuse_unary)


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
        # An unknown method is answered UNAUTHENTICATED too, not UNIMPLEMENTED (no API probing).
        return _refuse(handler)
