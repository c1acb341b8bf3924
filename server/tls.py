"""Server credentials for the gRPC port: TLS from the settings, mutual TLS when a client CA is set."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from sisguard.server.config import ConfigError, TLSConfig


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS {what} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN " not in data:
        raise ConfigError(f"TLS {what} {path} is not PEM (no '-----BEGIN' line)")
    return data


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials | None:
    """Credentials for ``add_secure_port``; None when TLS is off.

    With ``client_ca`` the server requires and verifies a client certificate (mutual TLS).
    Files are read once at start-up: rotate certificates by restarting (rolling, in Kubernetes).
    """
    if tls.cert is None or tls.key is None:
        return None
    cert = _read(tls.cert, "certificate")
    key = _read(tls.key, "key")
    ca = _read(tls.client_ca, "client CA") if tls.client_ca is not None else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def check_key_matches(tls: TLSConfig) -> None:
    """Refuse a key that does not belong to its certificate, saying so (grpc says "Failed to bind")."""
    if tls.cert is None or tls.key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key, password=lambda: b"")  # never prompt
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "MISMATCH" in reason.upper():
            raise ConfigError(f"TLS key {tls.key} does not belong to the certificate {tls.cert}") from exc
        raise ConfigError(f"TLS certificate {tls.cert} or key {tls.key} cannot be used: {reason}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read TLS certificate {tls.cert} or key {tls.key}: {exc.strerror or exc}") from exc
