"""Retries come from gRPC's service config: UNAVAILABLE always, RESOURCE_EXHAUSTED except on
Explain; a server that is down when a call starts and comes back is reached by a retry."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import grpc
import numpy as np
import pytest

from sisguard.client import AsyncClient, Client, ResourceExhausted, RetryPolicy, Unavailable

FAST = {"initial_backoff": 0.01, "max_backoff": 0.05}
X = np.zeros((1, 2), np.float32)
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "warming up")
EXHAUSTED = (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")


def test_service_config_carries_the_policy() -> None:
    config = json.loads(RetryPolicy(attempts=4, initial_backoff=0.25, max_backoff=3).service_config())
    explain, rest = config["methodConfig"]
    assert {n["method"] for n in explain["name"]} == {"Explain", "ExplainStream"}
    assert explain["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert {n["service"] for n in rest["name"]} == {"sisguard.v1.SISGuard", "grpc.health.v1.Health"}
    policy = rest["retryPolicy"]
    assert policy == {
        "maxAttempts": 4,
        "initialBackoff": "0.250s",
        "maxBackoff": "3.000s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
    }
    assert json.loads(RetryPolicy.coerce(0).service_config()) == {"methodConfig": []}
    assert RetryPolicy.coerce(2).attempts == 3


@pytest.mark.parametrize(
    ("retries", "script", "calls", "succeeds"),
    [
        (RetryPolicy(attempts=4, **FAST), [UNAVAILABLE, UNAVAILABLE], 3, True),
        (RetryPolicy(attempts=3, **FAST), [UNAVAILABLE] * 5, 3, False),
        (0, [UNAVAILABLE], 1, False),
        (RetryPolicy(attempts=2, **FAST), [EXHAUSTED], 2, True),
        (RetryPolicy(attempts=2, retry_resource_exhausted=False, **FAST), [EXHAUSTED], 1, False),
    ],
    ids=["unavailable-twice", "more-failures-than-attempts", "no-retries", "queue-full", "queue-full-not-retried"],
)
async def test_predict_retries(connect, fake, retries, script, calls, succeeds) -> None:
    fake.servicer.script["Predict"] = list(script)
    c = connect(fake.address, retries=retries)
    if succeeds:
        assert (await c.call("predict", "fake", X)).pair == "fake"
    else:
        with pytest.raises((Unavailable, ResourceExhausted)):
            await c.call("predict", "fake", X)
    assert fake.servicer.calls["Predict"] == calls


@pytest.mark.parametrize("method", ["Explain", "ExplainStream"])
async def test_explain_retries_unavailable_but_not_a_spent_budget(connect, fake, method) -> None:
    c = connect(fake.address, retries=RetryPolicy(attempts=3, **FAST))

    async def run():
        return await (c.call("explain", "fake", X[0]) if method == "Explain" else c.stream("fake", X[0]))

    fake.servicer.script[method] = [UNAVAILABLE]
    await run()
    assert fake.servicer.calls[method] == 2
    fake.servicer.script[method] = [(grpc.StatusCode.RESOURCE_EXHAUSTED, "evaluation budget of 10 exceeded")]
    with pytest.raises(ResourceExhausted, match="budget"):
        await run()
    assert fake.servicer.calls[method] == 3


# gRPC draws each wait at random up to the backoff; with these settings the four retries span
# about 3 s on average, and the server is back after about 0.2 s.
COMEBACK = RetryPolicy(attempts=5, initial_backoff=0.5, max_backoff=2.0)


def test_sync_client_reaches_a_server_that_starts_late(mini_config, free_port, start_server) -> None:
    address = f"127.0.0.1:{free_port}"
    with Client(address, retries=0, timeout=5) as impatient, pytest.raises(Unavailable):
        impatient.health()  # nothing listens yet
    outcome: dict[str, object] = {}
    with Client(address, retries=COMEBACK, timeout=30) as client:

        def call() -> None:
            try:
                outcome["prediction"] = client.predict("mini", np.zeros((1, 8, 8), np.float32))
            except Exception as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.2)  # the first attempt has failed: connection refused
        start_server(mini_config, port=free_port)
        caller.join(30)
    assert "error" not in outcome, outcome
    assert outcome["prediction"].dense.probabilities.shape == (1, 10)


async def test_async_client_rides_out_a_server_restart(mini_config, free_port, start_server) -> None:
    first = start_server(mini_config, port=free_port)
    async with AsyncClient(f"127.0.0.1:{free_port}", retries=COMEBACK, timeout=30) as client:
        x = np.zeros((1, 8, 8), np.float32)
        before = await client.predict("mini", x)
        await asyncio.to_thread(first.stop)
        call = asyncio.create_task(client.predict("mini", x))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(start_server, mini_config, port=free_port)
        after = await call
    np.testing.assert_allclose(after.dense.probabilities, before.dense.probabilities)
