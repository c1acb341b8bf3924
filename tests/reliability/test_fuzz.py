"""Property-based fuzzing of a live ``sisguard serve``: malformed Predict, ModelInfer, Explain and
ExplainStream requests (random shapes, negative or huge dimensions, wrong dtypes, byte lengths
that do not match, NaN/Inf, unknown pairs and models, absurd thresholds, empty or oversized
group maps). Every request must end with a proper status — never UNKNOWN, INTERNAL or a hang —
the server must stay up, and its memory must stay bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability.procs import ServerProcess, serving
from support.server import write_config

from sisguard.proto.inference import grpc_service_pb2 as ip
from sisguard.proto.inference import grpc_service_pb2_grpc as ip_grpc
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc

# more: a longer hunt (SISGUARD_SLOW_TESTS=1 runs 1,500 per RPC, or set SISGUARD_FUZZ_EXAMPLES)
_DEFAULT_EXAMPLES = "1500" if os.environ.get("SISGUARD_SLOW_TESTS") == "1" else "120"
EXAMPLES = int(os.environ.get("SISGUARD_FUZZ_EXAMPLES", _DEFAULT_EXAMPLES))
TIMEOUT = 30.0  # a call open longer than this counts as a hang
IMPROPER = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=os.environ.get("SISGUARD_SLOW_TESTS") != "1",  # CI runs the same cases every time
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RSS_GROWTH_LIMIT = 96 * 1024 * 1024


class Live:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(server.address)
        self.sis = pb_grpc.SISGuardStub(self.channel)
        self.oip = ip_grpc.GRPCInferenceServiceStub(self.channel)
        self.baseline_rss = 0
        self.codes: dict[str, set[str]] = {}

    def expect_proper(self, rpc: str, call) -> None:
        try:
            call()
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            assert code not in IMPROPER, f"{rpc}: {code.name}: {exc.details()}"
            assert exc.details(), f"{rpc}: {code.name} without a message"
        self.codes.setdefault(rpc, set()).add(code.name)
        assert self.server.proc.poll() is None, f"server died:\n{self.server.stderr[-3000:]}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model_pair: tuple[Path, Path]) -> Iterator[Live]:
    dense, pruned = model_pair
    tmp = tmp_path_factory.mktemp("fuzz")
    config = write_config(
        tmp,
        [
            {
                "name": "mini",
                "dense": str(dense),
                "pruned": str(pruned),
                "max_batch_size": 16,
                "explain": {"threshold": 0.3, "max_evaluations": 5000},
            }
        ],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
        limits={
            "max_message_bytes": 256 * 1024,
            "max_elements": 32 * 1024,
            "max_batch_rows": 256,
            "max_evaluations": 20_000,
            "max_sis": 4,
            "max_concurrent_explanations": 4,
        },
    )
    with serving(config) as server:
        lv = Live(server)
        x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
        for _ in range(50):  # warm-up: arenas, caches and lazily built state settle first
            lv.sis.Predict(pb.PredictRequest(pair="mini", inputs=_raw(x)), timeout=TIMEOUT)
            lv.sis.Explain(pb.ExplainRequest(pair="mini", input=_raw(x[:1]), max_sis=2), timeout=TIMEOUT)
        lv.baseline_rss = server.rss_bytes()
        yield lv
        lv.channel.close()
        assert "failed unexpectedly" not in server.stderr, server.stderr[-3000:]


def _raw(x: np.ndarray) -> pb.Tensor:
    return pb.Tensor(dtype=pb.FLOAT32, shape=list(x.shape), data=x.astype("<f4").tobytes())


# -- strategies ---------------------------------------------------------------------------------

SPECIAL = [0.0, 1.0, -1.0, 0.5, 1e30, -1e30, 1e-45, float("nan"), float("inf"), float("-inf")]
dims = st.one_of(st.integers(-3, 10), st.sampled_from([0, 64, 65, 1000, 2**31, 2**40, 2**62, -(2**62), 2**63 - 1]))
wild_shapes = st.lists(dims, max_size=6)
near_shapes = st.sampled_from(
    [[1, 1, 8, 8], [2, 1, 8, 8], [1, 8, 8], [8, 8], [64], [0, 1, 8, 8], [300, 1, 8, 8], [1, 1, 8, 9], [1, 2, 8, 8]]
)
dtypes = st.one_of(st.sampled_from(list(pb.DataType.values())), st.sampled_from([-1, 10, 99, 2**31 - 1]))
NUMPY = {pb.FLOAT32: "<f4", pb.FLOAT64: "<f8", pb.FLOAT16: "<f2", pb.INT64: "<i8", pb.INT32: "<i4", pb.UINT8: "u1"}


@st.composite
def tensors(draw: st.DrawFn) -> pb.Tensor:
    kind = draw(st.sampled_from(["valid", "valid", "consistent", "consistent", "wild", "length-off"]))
    if kind == "valid":
        rows = draw(st.sampled_from([1, 1, 2, 5]))
        x = np.random.default_rng(draw(st.integers(0, 2**16))).random((rows, 1, 8, 8), dtype=np.float32)
        return pb.Tensor(dtype=pb.FLOAT32, shape=list(x.shape), data=x.tobytes())
    if kind == "wild":
        return pb.Tensor(dtype=draw(dtypes), shape=draw(wild_shapes), data=draw(st.binary(max_size=1024)))
    shape = draw(near_shapes)
    code = draw(st.sampled_from([pb.FLOAT32, pb.FLOAT32, pb.FLOAT32, *NUMPY]))
    n = int(np.prod(shape))
    fill = draw(st.sampled_from(SPECIAL))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).random(n)
    if draw(st.booleans()):
        x[draw(st.integers(0, max(n - 1, 0))) if n else 0 : n] = fill
    with np.errstate(all="ignore"):
        data = x.astype(NUMPY[code]).tobytes()
    if kind == "length-off":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))] if draw(st.booleans()) else data + b"\0" * 3
    return pb.Tensor(dtype=code, shape=shape, data=data)


pairs = st.one_of(st.just("mini"), st.sampled_from(["", "nope", "MINI", "mini.dense", "x" * 300]), st.text())
enums = st.one_of(st.integers(0, 3), st.integers(-2, 6), st.sampled_from([2**31 - 1, -(2**31)]))
int32s = st.one_of(st.integers(-3, 70), st.sampled_from([2**31 - 1, -(2**31)]))
floats = st.one_of(st.sampled_from([*SPECIAL, 0.9, 1e300, -5.0]), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def predict_requests(draw: st.DrawFn) -> pb.PredictRequest:
    if draw(st.integers(0, 3)) == 0:  # valid: reaches the models
        rows = draw(st.integers(1, 20))
        x = np.random.default_rng(rows).random((rows, 1, 8, 8), dtype=np.float32)
        return pb.PredictRequest(pair="mini", inputs=_raw(x), variant=draw(st.sampled_from([0, 1, 2, 3])))
    req = pb.PredictRequest(pair=draw(pairs), variant=draw(enums))
    if draw(st.integers(0, 9)):
        req.inputs.CopyFrom(draw(tensors()))
    return req


OIP_TYPES = ["FP32", "FP64", "FP16", "INT64", "INT32", "INT8", "UINT8", "BOOL", "BYTES", "FP8", "", "fp32"]


@st.composite
def infer_requests(draw: st.DrawFn) -> ip.ModelInferRequest:
    if draw(st.integers(0, 3)) == 0:  # valid: reaches the model
        rows = draw(st.integers(1, 20))
        req = ip.ModelInferRequest(model_name=draw(st.sampled_from(["mini.dense", "mini.pruned"])))
        req.inputs.add(name="input", datatype="FP32", shape=[rows, 1, 8, 8])
        req.raw_input_contents.append(np.random.default_rng(rows).random(rows * 64, dtype=np.float32).tobytes())
        return req
    req = ip.ModelInferRequest(
        model_name=draw(st.sampled_from(["mini.dense", "mini.pruned", "mini", "nope.dense", "", ".dense"])),
        model_version=draw(st.sampled_from(["", "1", "2", "latest"])),
        id=draw(st.text(max_size=20)),
    )
    for _ in range(draw(st.integers(0, 2))):
        datatype = draw(st.sampled_from(OIP_TYPES))
        shape = draw(st.one_of(near_shapes, wild_shapes))
        spec = req.inputs.add(name=draw(st.sampled_from(["input", "input", "x", ""])), datatype=datatype, shape=shape)
        how = draw(st.sampled_from(["raw", "raw", "fp32", "int", "none"]))
        if how == "raw":
            if draw(st.booleans()) and datatype == "FP32" and all(0 <= d <= 4096 for d in shape):
                n = int(np.prod(shape)) if shape else 1
                req.raw_input_contents.append(np.full(n, draw(st.sampled_from(SPECIAL)), "<f4").tobytes())
            else:
                req.raw_input_contents.append(draw(st.binary(max_size=1024)))
        elif how == "fp32":
            spec.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=130)))
        elif how == "int":
            spec.contents.int_contents.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=70)))
    for name in draw(st.lists(st.sampled_from(["logits", "probs", ""]), max_size=2)):
        req.outputs.add(name=name)
    return req


@st.composite
def sane_explain_requests(draw: st.DrawFn) -> pb.ExplainRequest:
    """Valid or nearly valid: reaches the SIS engine and the models."""
    x = np.random.default_rng(draw(st.integers(0, 2**16))).random((1, 8, 8), dtype=np.float32)
    req = pb.ExplainRequest(
        pair="mini",
        input=pb.Tensor(dtype=pb.FLOAT32, shape=[1, 8, 8], data=x.tobytes()),
        features=draw(st.sampled_from([0, pb.ELEMENT, pb.PIXEL, pb.PATCH])),
        patch_height=draw(st.integers(0, 9)),
        patch_width=draw(st.integers(0, 9)),
        baseline=draw(st.sampled_from([0, pb.ZEROS, pb.CONSTANT])),
        baseline_constant=draw(st.sampled_from([0.0, 0.5, -1.0])),
        max_sis=draw(st.integers(0, 6)),
        variants=draw(st.integers(0, 3)),
        mode=draw(st.integers(0, 2)),
        batch_k=draw(st.integers(0, 70)),
        max_evaluations=draw(st.sampled_from([0, 0, 10, 500, 5000, 10**6])),
        return_backselect=draw(st.booleans()),
        allow_partial=draw(st.booleans()),
    )
    if draw(st.booleans()):
        req.target = draw(st.integers(-1, 10))
    which = draw(st.sampled_from(["none", "absolute", "relative"]))
    if which == "absolute":
        req.threshold_absolute = draw(st.floats(-1.0, 2.0))
    elif which == "relative":
        req.threshold_relative = draw(st.floats(-0.5, 1.5))
    return req


@st.composite
def explain_requests(draw: st.DrawFn) -> pb.ExplainRequest:
    if draw(st.booleans()):
        return draw(sane_explain_requests())
    req = pb.ExplainRequest(
        pair=draw(pairs),
        features=draw(enums),
        patch_height=draw(int32s),
        patch_width=draw(int32s),
        baseline=draw(enums),
        baseline_constant=draw(floats),
        max_sis=draw(int32s),
        variants=draw(enums),
        mode=draw(enums),
        batch_k=draw(int32s),
        max_evaluations=draw(st.sampled_from([-1, 0, 1, 10, 100, 5000, 10**6, 2**62])),
        return_backselect=draw(st.booleans()),
        allow_partial=draw(st.booleans()),
    )
    if draw(st.integers(0, 9)):
        req.input.CopyFrom(draw(tensors()))
    if draw(st.booleans()):
        req.target = draw(int32s)
    threshold = draw(st.sampled_from(["none", "absolute", "relative"]))
    if threshold == "absolute":
        req.threshold_absolute = draw(floats)
    elif threshold == "relative":
        req.threshold_relative = draw(floats)
    if draw(st.booleans()):
        gm = draw(st.sampled_from(["empty", "ones", "oversized", "random", "wild"]))
        if gm == "wild":
            req.group_map.CopyFrom(draw(tensors()))
        else:
            n = {"empty": 0, "ones": 64, "oversized": 8192, "random": 64}[gm]
            shape = {"empty": [0], "ones": [1, 8, 8], "oversized": [8192], "random": [1, 8, 8]}[gm]
            values = (
                np.random.default_rng(n).integers(-5, 5000, n) if gm in ("random", "oversized") else np.ones(n)
            ).astype("<i4")
            req.group_map.CopyFrom(pb.Tensor(dtype=pb.INT32, shape=shape, data=values.tobytes()))
    if draw(st.integers(0, 4)) == 0:
        req.baseline_tensor.CopyFrom(draw(tensors()))
    return req


# -- properties ---------------------------------------------------------------------------------


def test_malformed_predict(live: Live) -> None:
    @FUZZ
    @given(predict_requests())
    def check(req: pb.PredictRequest) -> None:
        live.expect_proper("Predict", lambda: live.sis.Predict(req, timeout=TIMEOUT))

    check()


def test_malformed_model_infer(live: Live) -> None:
    @FUZZ
    @given(infer_requests())
    def check(req: ip.ModelInferRequest) -> None:
        live.expect_proper("ModelInfer", lambda: live.oip.ModelInfer(req, timeout=TIMEOUT))

    check()


def test_malformed_explain_and_explain_stream(live: Live) -> None:
    @FUZZ
    @given(explain_requests(), st.booleans())
    def check(req: pb.ExplainRequest, streaming: bool) -> None:
        if streaming:
            live.expect_proper("ExplainStream", lambda: list(live.sis.ExplainStream(req, timeout=TIMEOUT)))
        else:
            live.expect_proper("Explain", lambda: live.sis.Explain(req, timeout=TIMEOUT))

    check()


def test_oversized_message_is_refused(live: Live) -> None:
    x = np.zeros((1100, 1, 8, 8), np.float32)  # 281,600 bytes > max_message_bytes
    with pytest.raises(grpc.RpcError) as err:
        live.sis.Predict(pb.PredictRequest(pair="mini", inputs=_raw(x)), timeout=TIMEOUT)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_server_still_serving_with_bounded_memory(live: Live) -> None:
    """Runs last in this module: after every fuzz case above the server answers, SERVING, and
    its resident memory grew by less than RSS_GROWTH_LIMIT over the post-warm-up baseline."""
    status = health_pb2_grpc.HealthStub(live.channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    x = np.ones((2, 1, 8, 8), np.float32)
    assert len(live.sis.Predict(pb.PredictRequest(pair="mini", inputs=_raw(x)), timeout=TIMEOUT).dense.top1) == 2
    rss = live.server.rss_bytes()
    print(f"fuzz: RSS {live.baseline_rss / 2**20:.1f} MiB after warm-up, {rss / 2**20:.1f} MiB now; codes {live.codes}")
    assert rss - live.baseline_rss < RSS_GROWTH_LIMIT
    # The fuzzer also reached the models, not only the validators.
    for rpc in ("Predict", "ModelInfer", "Explain", "ExplainStream"):
        assert "OK" in live.codes.get(rpc, set()), (rpc, live.codes)
