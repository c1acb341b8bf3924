"""Bearer tokens on every RPC except health; constant-time comparison; tokens never logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.server import running

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.config import ConfigError, load_settings
from sisguard.server.grpc.auth import MESSAGE, accepted_tokens, token_matches
from sisguard.wire import to_tensor

TOKEN_A = "tok-A-0123456789abcdef"
TOKEN_B = "tok-B-fedcba9876543210"
FILE_TOKEN = "file-token-00000000000000001"
X = to_tensor(np.zeros((1, 1, 8, 8), np.float32))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def auth_app(pair_config: Path, tmp_path: Path) -> AsyncIterator[App]:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# one token per line\n\n{FILE_TOKEN}   # ops team\n")
    async with running(pair_config, tokens=[TOKEN_A, TOKEN_B], tokens_file=tokens_file) as app:
        yield app


@pytest.fixture
async def channel(auth_app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_app.port}") as ch:
        yield ch


async def predict(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> pb.PredictResponse:
    return await pb_grpc.SISGuardStub(channel).Predict(pb.PredictRequest(pair="mini", inputs=X), metadata=metadata)


@pytest.mark.parametrize("token", [TOKEN_A, TOKEN_B, FILE_TOKEN])
async def test_each_accepted_token_is_served(channel: grpc.aio.Channel, token: str) -> None:
    resp = await predict(channel, bearer(token))
    assert len(resp.dense.top1) == 1
    infer = await ip_grpc.GRPCInferenceServiceStub(channel).ServerReady(ip.ServerReadyRequest(), metadata=bearer(token))
    assert infer.ready


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        bearer("tok-A-0123456789abcdeX"),  # one character off
        bearer(TOKEN_A[:-1]),  # a prefix
        bearer(TOKEN_A + "0"),  # an extension
        bearer(""),
        (("authorization", f"Basic {TOKEN_A}"),),  # wrong scheme
        (("authorization", TOKEN_A),),  # no scheme
        (("x-api-key", TOKEN_A),),  # wrong header
    ],
    ids=["none", "wrong", "prefix", "longer", "empty", "basic", "no-scheme", "other-header"],
)
async def test_missing_or_wrong_token_is_unauthenticated(channel: grpc.aio.Channel, metadata) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await predict(channel, metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details() == MESSAGE


async def test_every_service_and_call_shape_needs_the_token(channel: grpc.aio.Channel) -> None:
    calls = {
        "ListModels": pb_grpc.SISGuardStub(channel).ListModels(pb.ListModelsRequest()),
        "ModelInfer": ip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            ip.ModelInferRequest(model_name="mini.dense")
        ),
        "ServerLive": ip_grpc.GRPCInferenceServiceStub(channel).ServerLive(ip.ServerLiveRequest()),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
    # Server streaming (ExplainStream) is refused before any message.
    stream = pb_grpc.SISGuardStub(channel).ExplainStream(pb.ExplainRequest(pair="mini"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stream:
            pass
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Bidirectional streaming (reflection) too: it describes the API, so it is not exempt.
    refl = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in refl:
            pass
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Unknown methods do not reveal whether they exist.
    unknown = channel.unary_unary("/sisguard.v1.SISGuard/NoSuchMethod")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unknown(b"")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reflection_works_with_a_token(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = [
        r
        async for r in stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=bearer(TOKEN_A)
        )
    ]
    names = {s.name for s in responses[0].list_services_response.service}
    assert "sisguard.v1.SISGuard" in names


async def test_health_needs_no_token(channel: grpc.aio.Channel) -> None:
    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_tokens_from_the_environment(pair_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SISGUARD_TOKENS", f"{TOKEN_A}, {TOKEN_B}")
    async with running(pair_config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        await predict(ch, bearer(TOKEN_B))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await predict(ch)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_without_tokens_auth_is_off(app: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        await predict(ch)


async def test_tokens_are_never_logged(pair_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(pair_config, tokens=[TOKEN_A])
    assert TOKEN_A not in repr(settings) and TOKEN_A not in str(settings.model_dump())
    async with running(pair_config, tokens=[TOKEN_A]) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        await predict(ch, bearer(TOKEN_A))
        with pytest.raises(grpc.aio.AioRpcError):
            await predict(ch, bearer(TOKEN_A + "x"))
    assert "refused /sisguard.v1.SISGuard/Predict" in caplog.text
    assert "tok-A" not in caplog.text


@pytest.mark.parametrize("bad", ["short", "has a space in it 0123", "tab\tinside-0123456789"])
def test_weak_or_malformed_tokens_are_refused_at_start_up(pair_config: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        accepted_tokens(load_settings(pair_config, tokens=[bad]))
    assert bad not in str(err.value)


def test_missing_tokens_file_is_a_config_error(pair_config: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read tokens_file"):
        accepted_tokens(load_settings(pair_config, tokens_file=tmp_path / "nope"))


def test_token_matches_compares_against_every_token() -> None:
    accepted = [b"a" * 20, b"b" * 20, b"c" * 20]
    assert token_matches(b"c" * 20, accepted)
    assert token_matches(b"a" * 20, accepted)
    assert not token_matches(b"a" * 19, accepted)
    assert not token_matches(b"", accepted)
    assert not token_matches(b"a" * 20, [])
