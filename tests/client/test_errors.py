"""Every gRPC status maps to one SDK exception, chained to the gRPC error and carrying the
server's details; real failures of a real server arrive as the right type; timeouts apply per
client and per call."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from sisguard.client import (
    Cancelled,
    Client,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    SISGuardError,
    Unauthenticated,
    Unavailable,
)
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.wire import WireError, to_tensor

EXPECTED = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: ServerError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidInput,
    grpc.StatusCode.ABORTED: ServerError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInput,
    grpc.StatusCode.UNIMPLEMENTED: ServerError,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: ServerError,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}
X = np.zeros((1, 2), np.float32)


def test_every_status_code_is_covered() -> None:
    assert set(EXPECTED) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


@pytest.mark.parametrize("code", list(EXPECTED), ids=lambda c: c.name)
@pytest.mark.parametrize("method", ["Predict", "Explain", "ExplainStream"])
async def test_status_maps_to_exception(connect, fake, code, method) -> None:
    fake.servicer.script[method] = [(code, f"the server says {code.name.lower()}")]
    c = connect(fake.address, retries=0)
    with pytest.raises(EXPECTED[code]) as info:
        if method == "Predict":
            await c.call("predict", "fake", X)
        elif method == "Explain":
            await c.call("explain", "fake", X[0])
        else:
            await c.stream("fake", X[0])
    err = info.value
    assert isinstance(err, SISGuardError)
    assert err.code == code.name
    assert err.details == f"the server says {code.name.lower()}"
    assert err.details in str(err)
    assert isinstance(err.__cause__, grpc.RpcError) and err.__cause__.code() == code


async def test_real_server_errors(connect, address) -> None:
    c = connect(address, retries=0)
    with pytest.raises(NotFound, match="unknown pair 'nope'"):
        await c.call("predict", "nope", np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(InvalidInput, match=r"shape \[2, 3\]") as info:
        await c.call("predict", "mini", np.zeros((2, 3), np.float32))
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(InvalidInput):
        await c.call("explain", "mini", np.zeros((1, 8, 8), np.float32), target=99)
    with pytest.raises(ResourceExhausted) as exhausted:
        await c.call("explain", "mini", np.full((1, 8, 8), 3.0, np.float32), features="element", max_evaluations=5)
    assert exhausted.value.code == "RESOURCE_EXHAUSTED"
    partial = await c.call(
        "explain",
        "mini",
        np.full((1, 8, 8), 3.0, np.float32),
        features="element",
        max_evaluations=5,
        allow_partial=True,
        threshold=0.99,
        relative=True,
    )
    assert "partial" in {v.status for v in partial.variants.values()}


async def test_nothing_listening_is_unavailable(connect, free_port) -> None:
    c = connect(f"127.0.0.1:{free_port}", retries=0, timeout=5)
    with pytest.raises(Unavailable) as info:
        await c.call("models")
    assert isinstance(info.value, ConnectionError) and info.value.code == "UNAVAILABLE"


@pytest.mark.parametrize(
    "options",
    [
        {"relative": True},
        {"mode": "batched"},
        {"batch_k": 3},
        {"features": "patch:0x2"},
        {"features": "hexagons"},
        {"features": np.array([[0.5]])},
        {"baseline": "ones"},
        {"baseline": float("nan")},
        {"threshold": float("inf")},
        {"max_sis": 0},
        {"max_evaluations": 0},
        {"variants": "all"},
        {"target": -1},
    ],
    ids=repr,
)
async def test_bad_options_fail_before_sending(connect, fake, options) -> None:
    c = connect(fake.address)
    with pytest.raises(InvalidInput):
        await c.call("explain", "fake", X[0], **options)
    assert fake.servicer.calls["Explain"] == 0


def test_bad_client_arguments() -> None:
    for kwargs in ({"timeout": 0}, {"timeout": -1.0}, {"retries": 9}, {"retries": -1}, {"token": "a\nb"}):
        with pytest.raises(InvalidInput):
            Client("127.0.0.1:1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Client("")


async def test_timeout_per_client_and_per_call(connect, fake) -> None:
    fake.servicer.script["Predict"] = [1.0, 1.0, 1.0]  # each of the next three calls takes a second
    c = connect(fake.address, timeout=0.2, retries=0)
    with pytest.raises(DeadlineExceeded) as info:
        await c.call("predict", "fake", X)
    assert isinstance(info.value, TimeoutError)
    assert (await c.call("predict", "fake", X, timeout=10)).first.top1.tolist() == [0]  # per-call override
    unlimited = connect(fake.address, timeout=None, retries=0)
    with pytest.raises(DeadlineExceeded):
        await unlimited.call("predict", "fake", X, timeout=0.2)


async def test_token_travels_as_bearer_metadata_on_plaintext(connect, fake) -> None:
    c = connect(fake.address, token="s3cret-token-0123456789")
    await c.call("predict", "fake", X)
    assert fake.servicer.metadata[-1]["authorization"] == "Bearer s3cret-token-0123456789"
    anonymous = connect(fake.address)
    await anonymous.call("predict", "fake", X)
    assert "authorization" not in fake.servicer.metadata[-1]


async def test_a_malformed_response_is_invalid_input_chained_to_the_codec(connect, fake) -> None:
    bad = to_tensor(np.zeros((1, 2), np.float32))
    bad.data = bad.data[:-2]  # 6 bytes for 2 float32
    v = pb.VariantPrediction(probabilities=bad, top1=[0], top1_probability=[0.5])
    fake.servicer.script["Predict"] = [pb.PredictResponse(pair="fake", dense=v)]
    c = connect(fake.address, retries=0)
    with pytest.raises(InvalidInput, match=r"the server's probabilities: 6 bytes do not fit shape \[1, 2\]") as info:
        await c.call("predict", "fake", X)
    assert isinstance(info.value.__cause__, WireError) and info.value.code is None


async def test_values_a_newer_server_may_send_read_as_unspecified(connect, fake) -> None:
    mask = to_tensor(np.array([True, False]))
    v = pb.VariantExplanation(status=99, sis=[pb.SubsetExplanation(features=[0], score=0.9, mask=mask)])
    agreement = pb.Agreement(divergent=True, reasons=[pb.LOW_IOU, 42])
    fake.servicer.script["Explain"] = [pb.ExplainResponse(pair="fake", dense=v, pruned=v, agreement=agreement)]
    e = await connect(fake.address, retries=0).call("explain", "fake", X[0])
    assert e.dense is not None and e.dense.status == "unspecified"
    assert e.agreement is not None and e.agreement.reasons == ("low_iou",)
    assert e.agreement.dense_sis_sufficient_for_pruned is None  # unset on the wire: no SIS on that side
    assert e.agreement.to_dict()["reasons"] == ["low_iou"]


async def test_an_array_that_cannot_travel_fails_before_sending(connect, fake) -> None:
    c = connect(fake.address)
    with pytest.raises(InvalidInput, match="complex128 cannot be sent; use one of") as info:
        await c.call("predict", "fake", X.astype(np.complex128))
    assert isinstance(info.value.__cause__, WireError)
    assert fake.servicer.calls["Predict"] == 0
