"""``python -m sisguard.server.healthcheck``: exit 0 when the server's health service says SERVING.

Used by the Docker ``HEALTHCHECK``. It reads the same configuration as the server
(``--config``, default ``$SISGUARD_CONFIG`` or /etc/sisguard/config.yaml, plus ``SISGUARD_*``
variables) to find the port, and asks the overall health (service ``""``) over:

* the plaintext ``health_port`` when one is configured (works whatever TLS the main port uses);
* otherwise the main port, in plaintext when TLS is off, or over TLS when it is on — trusting
  ``--ca`` (default: the server's own certificate file, right for self-signed certificates)
  and presenting ``--client-cert``/``--client-key`` for mutual TLS.

Health needs no bearer token. Prints one line; exit 0 SERVING, 1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_CONFIG = Path("/etc/sisguard/config.yaml")


def _target(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _channel(args: argparse.Namespace) -> tuple[grpc.Channel, str]:
    if args.address:
        return grpc.insecure_channel(args.address), args.address
    from sisguard.server.config import load_settings

    config = args.config or Path(os.environ.get("SISGUARD_CONFIG", DEFAULT_CONFIG))
    settings = load_settings(config if config.exists() else None)
    if settings.health_port:
        target = _target(settings.host, settings.health_port)
        return grpc.insecure_channel(target), target
    target = _target(settings.host, settings.port)
    tls = settings.tls
    if tls.cert is None:
        return grpc.insecure_channel(target), target
    ca = (args.ca or tls.cert).read_bytes()
    key = args.client_key.read_bytes() if args.client_key else None
    chain = args.client_cert.read_bytes() if args.client_cert else None
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(target, creds, options=options), target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sisguard.server.healthcheck", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="server config (default $SISGUARD_CONFIG or /etc/sisguard/config.yaml)")
    p.add_argument("--address", help="HOST:PORT to ask in plaintext, ignoring the config")
    p.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    p.add_argument("--ca", type=Path, help="CA bundle trusting the server certificate (TLS)")
    p.add_argument("--client-cert", type=Path, help="client certificate (mutual TLS)")
    p.add_argument("--client-key", type=Path, help="client key (mutual TLS)")
    p.add_argument("--server-name", help="name to verify in the server certificate (default: the host)")
    args = p.parse_args(argv)
    try:
        channel, target = _channel(args)
    except Exception as exc:  # config or certificate problems: one line, unhealthy
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"unhealthy: {target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    print(f"{target}: {status}")
    return 0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
