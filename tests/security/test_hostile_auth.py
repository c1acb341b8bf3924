"""Authentication cannot be switched off by accident, and refused callers cost the server nothing
it keeps: token sources merge as documented, an empty or blank source stops the start-up, the
start-up says whether auth is on, and unauthenticated bodies are refused before they are read."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import numpy as np
import pytest
from reliability.procs import serving
from support.server import running, write_config

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.config import ConfigError, load_settings
from sisguard.server.grpc.auth import load_tokens
from sisguard.wire import to_tensor

YAML_TOKEN = "yaml-token-0123456789"
ENV_TOKEN = "env-token-0123456789"
FILE_TOKEN = "file-token-0123456789"
X = np.zeros((1, 1, 8, 8), np.float32)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(ch: grpc.aio.Channel, token: str | None) -> grpc.StatusCode:
    try:
        await pb_grpc.SISGuardStub(ch).Predict(
            pb.PredictRequest(pair="mini", inputs=to_tensor(X)), metadata=bearer(token) if token else None, timeout=30
        )
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("blank", ["", " , ", ",", "   "])
def test_a_blank_sisguard_tokens_stops_the_start_up(
    pair_config: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("SISGUARD_TOKENS", blank)
    with pytest.raises(ConfigError, match="SISGUARD_TOKENS is set but holds no token"):
        load_settings(pair_config, tokens=[YAML_TOKEN])


@pytest.mark.parametrize("blank", ["", " , ", ["", YAML_TOKEN], ["  "]])
def test_blank_yaml_tokens_are_refused(pair_config: Path, blank: object) -> None:
    with pytest.raises(ConfigError, match=r"no token|empty or blank"):
        load_settings(pair_config, tokens=blank)


def test_an_empty_tokens_file_is_refused(pair_config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# nothing here\n\n   \n")
    with pytest.raises(ConfigError, match="holds no token"):
        load_tokens(load_settings(pair_config, tokens_file=empty))


def test_sisguard_tokens_with_an_empty_entry_is_refused(pair_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SISGUARD_TOKENS", f"{ENV_TOKEN},,")
    with pytest.raises(ConfigError, match="empty entry"):
        load_settings(pair_config)


async def test_every_token_source_is_merged(
    pair_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tokens").write_text(f"{FILE_TOKEN}  # ops\n")
    monkeypatch.setenv("SISGUARD_TOKENS", ENV_TOKEN)
    caplog.set_level(logging.INFO, logger="sisguard.server.app")
    async with (
        running(pair_config, tokens=[YAML_TOKEN], tokens_file=tmp_path / "tokens") as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch,
    ):
        for token in (YAML_TOKEN, ENV_TOKEN, FILE_TOKEN):
            assert await code_of(ch, token) == grpc.StatusCode.OK, token
        assert await code_of(ch, None) == grpc.StatusCode.UNAUTHENTICATED
        assert await code_of(ch, "wrong-token-0123456789") == grpc.StatusCode.UNAUTHENTICATED
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth ")]
    assert lines == ["auth on: 3 bearer tokens loaded (2 from tokens/SISGUARD_TOKENS, 1 from tokens_file)"]
    for token in (YAML_TOKEN, ENV_TOKEN, FILE_TOKEN):
        assert token not in caplog.text


async def test_the_start_up_says_when_auth_is_off(pair_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sisguard.server.app")
    async with running(pair_config):
        pass
    lines = [r for r in caplog.records if r.getMessage().startswith("auth ")]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert lines[0].getMessage().startswith("auth off: no bearer tokens configured")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_refused_unauthenticated_bodies_cost_no_memory(tmp_path: Path, model_pair: tuple[Path, Path]) -> None:
    """Eight concurrent 60 MiB Predicts without a token, twice over: all refused, and the
    server's RSS, sampled throughout, stays within 100 MB of where it started (it used to peak
    at 1.4 GB and keep about 1 GB)."""
    dense, pruned = model_pair
    config = write_config(
        tmp_path,
        [{"name": "mini", "dense": str(dense), "pruned": str(pruned)}],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
        tokens=[YAML_TOKEN],
    )
    body = pb.PredictRequest(
        pair="mini", inputs=pb.Tensor(dtype=pb.FLOAT32, shape=[1, 1, 8, 8], data=b"\0" * (60 << 20))
    ).SerializeToString()  # once; sent as bytes

    async def attack(address: str, pid: int) -> tuple[list[str], float]:
        peak = 0.0
        codes: list[str] = []
        opts = [("grpc.max_send_message_length", -1)]
        async with grpc.aio.insecure_channel(address, options=opts) as ch:
            predict = ch.unary_unary("/sisguard.v1.SISGuard/Predict")
            for _ in range(2):
                calls = [asyncio.ensure_future(predict(body, timeout=60)) for _ in range(8)]
                while not all(c.done() for c in calls):
                    peak = max(peak, _rss_mb(pid))
                    await asyncio.wait(calls, timeout=0.02)
                codes += [c.exception().code().name for c in calls]  # type: ignore[union-attr]
            assert await code_of(ch, YAML_TOKEN) == grpc.StatusCode.OK  # still serving
        return codes, peak

    with serving(config) as server:
        start = _rss_mb(server.proc.pid)
        codes, peak = asyncio.run(attack(server.address, server.proc.pid))
        after = _rss_mb(server.proc.pid)
    assert set(codes) == {"UNAUTHENTICATED"}
    assert peak - start < 100, f"RSS {start:.0f} MB -> peak {peak:.0f} MB"
    assert after - start < 100, f"RSS {start:.0f} MB -> {after:.0f} MB after"
