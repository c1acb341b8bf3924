"""TLS and mutual TLS on the gRPC port, with certificates made in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.server import running

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.config import ConfigError, load_settings
from sisguard.wire import to_tensor

X = np.zeros((2, 1, 8, 8), np.float32)


async def predict(channel: grpc.aio.Channel) -> pb.PredictResponse:
    stub = pb_grpc.SISGuardStub(channel)
    return await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(X)), timeout=5)


def tls_channel(port: int, ca: Path, client: tuple[bytes, bytes] | None = None) -> grpc.aio.Channel:
    cert, key = client if client else (None, None)
    creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(), private_key=key, certificate_chain=cert)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds)


@pytest.fixture
async def tls_app(pair_config: Path, pki) -> AsyncIterator[App]:
    async with running(pair_config, tls={"cert": pki.server.cert, "key": pki.server.key}) as app:
        yield app


@pytest.fixture
async def mtls_app(pair_config: Path, pki) -> AsyncIterator[App]:
    tls = {"cert": pki.server.cert, "key": pki.server.key, "client_ca": pki.ca}
    async with running(pair_config, tls=tls, health_port=0) as app:
        yield app


async def test_tls_client_trusting_the_ca_is_served(tls_app: App, pki) -> None:
    async with tls_channel(tls_app.port, pki.ca) as ch:
        resp = await predict(ch)
    assert len(resp.dense.top1) == 2


async def test_plaintext_client_against_tls_server_fails(tls_app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_app.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await predict(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_not_trusting_the_server_certificate_fails(tls_app: App, pki) -> None:
    async with tls_channel(tls_app.port, pki.rogue_ca) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await predict(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_client_with_certificate_is_served(mtls_app: App, pki) -> None:
    async with tls_channel(mtls_app.port, pki.ca, pki.client.pem()) as ch:
        resp = await predict(ch)
    assert len(resp.top1_agree) == len(resp.pruned.top1) == 2


@pytest.mark.parametrize("who", ["no certificate", "certificate from another CA", "plaintext"])
async def test_mtls_refuses_clients_without_a_trusted_certificate(mtls_app: App, pki, who: str) -> None:
    if who == "plaintext":
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{mtls_app.port}")
    else:
        ch = tls_channel(mtls_app.port, pki.ca, None if who == "no certificate" else pki.rogue_client.pem())
    async with ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await predict(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_port_answers_in_plaintext_while_the_main_port_needs_mtls(mtls_app: App) -> None:
    assert mtls_app.health_port and mtls_app.health_port != mtls_app.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_app.health_port}") as ch:
        resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        # Only health lives there: the model API is not reachable on the plaintext port.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await predict(ch)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"cert": "server.crt"}, "must be set together"),
        ({"client_ca": "ca.crt"}, "needs tls.cert and tls.key"),
    ],
)
def test_incomplete_tls_settings_are_refused(pair_config: Path, tls: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(pair_config, tls=tls)


async def test_unreadable_certificate_stops_the_start(pair_config: Path, tmp_path: Path, pki) -> None:
    bogus = tmp_path / "not-a-cert.pem"
    bogus.write_text("hello")
    for cert, message in ((tmp_path / "missing.pem", "cannot read TLS certificate"), (bogus, "is not PEM")):
        app = App(load_settings(pair_config, tls={"cert": cert, "key": pki.server.key}))
        with pytest.raises(ConfigError, match=message):
            await app.start()


def test_tls_paths_are_relative_to_the_config_file(pair_config: Path) -> None:
    s = load_settings(pair_config, tls={"cert": "certs/s.crt", "key": "certs/s.key", "client_ca": "/abs/ca.crt"})
    assert s.tls.cert == pair_config.parent / "certs" / "s.crt"
    assert s.tls.client_ca == Path("/abs/ca.crt")
