"""The shared wire codec: tensors, dtypes, enum vocabularies and the agreement block, both ways."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sisguard import wire
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.sis import AgreementResult

WIRE_DIR = Path(wire.__file__).parent

ALL_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("order", ["<", ">"])
def test_tensors_round_trip_in_either_byte_order(dtype, order) -> None:
    x = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    x = x.astype(x.dtype.newbyteorder(order))
    t = wire.to_tensor(x)
    assert t.dtype == wire.code_of(x.dtype) and list(t.shape) == [2, 3, 4]
    view = wire.from_tensor(t, "x")
    own = wire.from_tensor(t, "x", copy=True)
    for got in (view, own):
        np.testing.assert_array_equal(got, x)
        assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert not view.flags.writeable and own.flags.writeable
    assert wire.oip_dtype(wire.oip_name(x.dtype)).newbyteorder("=") == np.dtype(dtype)


def test_a_byte_length_that_does_not_fit_the_shape_is_refused_saying_what_was_expected() -> None:
    t = wire.to_tensor(np.zeros((2, 3), np.float32))
    t.data = t.data[:-1]
    with pytest.raises(wire.WireError, match=r"probabilities: 23 bytes do not fit shape \[2, 3\] of float32: "
                       r"expected 24 bytes"):
        wire.from_tensor(t, "probabilities")


def test_unknown_dtypes_are_refused_both_ways() -> None:
    with pytest.raises(wire.WireError, match="input: dtype 42 is not supported; expected one of FLOAT32"):
        wire.from_tensor(pb.Tensor(dtype=42, shape=[1], data=b"\0"), "input")
    with pytest.raises(wire.WireError, match="dtype DATA_TYPE_UNSPECIFIED is not supported"):
        wire.dtype_of(pb.DATA_TYPE_UNSPECIFIED)
    with pytest.raises(wire.WireError, match="complex128 cannot be sent; use one of bool"):
        wire.to_tensor(np.zeros(2, np.complex128))
    with pytest.raises(wire.WireError, match="datatype 'BYTES' is not supported"):
        wire.oip_dtype("BYTES")


def test_shapes_are_checked_before_any_arithmetic() -> None:
    with pytest.raises(wire.WireError, match="17 dimensions; expected at most 16"):
        wire.check_shape([1] * 17, "x")
    with pytest.raises(wire.WireError, match="negative dimension"):
        wire.check_shape([2, -1], "x")
    with pytest.raises(wire.TooLarge, match="alone would exceed the server limit of 100 elements"):
        wire.check_shape([0, 2**62], "x", 100)
    with pytest.raises(wire.TooLarge, match="110 elements exceed"):
        wire.check_shape([10, 11], "x", 100)
    assert wire.check_shape([0, 2**62], "x") == 0  # no limit: only rank and signs
    assert issubclass(wire.TooLarge, wire.WireError) and issubclass(wire.WireError, ValueError)


def test_typed_values_out_of_their_dtypes_range_are_refused() -> None:
    np.testing.assert_array_equal(wire.from_values([0, 255], np.dtype("u1"), [2], "x"), [0, 255])
    with pytest.raises(wire.WireError, match=r"value 256 is out of range for uint8: expected values in \[0, 255\]"):
        wire.from_values([256], np.dtype("u1"), [1], "x")


VOCABULARIES = {
    "VARIANTS": (wire.VARIANTS, pb.Variant),
    "OUTPUT_KINDS": (wire.OUTPUT_KINDS, pb.OutputKind),
    "FEATURES": (wire.FEATURES, pb.FeatureKind),
    "BASELINES": (wire.BASELINES, pb.BaselineKind),
    "MODES": (wire.MODES, pb.ExplainMode),
    "STATUSES": (wire.STATUSES, pb.SISStatus),
    "REASONS": (wire.REASONS, pb.DivergenceReason),
    "VERDICTS": (wire.VERDICTS, pb.Verdict),
}


@pytest.mark.parametrize("key", VOCABULARIES)
def test_every_proto_value_has_one_name_both_ways(key) -> None:
    vocab, enum = VOCABULARIES[key]
    codes = [c for c in enum.values() if c != 0]
    assert sorted(vocab.code(n) for n in vocab.names) == sorted(codes)
    for code in codes:
        name = vocab.name(code)
        assert name is not None and vocab.code(name) == code and vocab.get(code, None) == name
        # the proto value's own name, lower-cased, except the one kept for compatibility
        assert name == ("tensor" if enum.Name(code) == "CUSTOM" else enum.Name(code).lower())
    assert vocab.name(0) == vocab.default and vocab.get(0, "fallback") == "fallback"
    with pytest.raises(wire.WireError, match=f"{vocab.what} 99 is not one of {enum.Name(codes[0])}"):
        vocab.name(99)
    assert vocab.get(99, "unspecified") == "unspecified"


def test_names_outside_a_vocabulary_are_refused_listing_the_names() -> None:
    with pytest.raises(wire.WireError, match="variant must be 'dense', 'pruned' or 'both', got 'all'"):
        wire.VARIANTS.code("all")
    with pytest.raises(
        wire.WireError, match=r"baseline must be .*'tensor', 'blur', 'pad_token' or 'mask_token', got 'custom'"
    ):
        wire.BASELINES.code("custom")
    assert wire.VARIANTS.name(pb.VARIANT_UNSPECIFIED) == "both" and wire.MODES.name(0) == "exact"
    assert wire.FEATURES.name(0) is None and wire.BASELINES.name(0) is None


def test_the_agreement_block_has_the_engines_fields() -> None:
    assert set(wire.AGREEMENT_FIELDS) == {f.name for f in pb.Agreement.DESCRIPTOR.fields}
    assert tuple(f.name for f in dataclasses.fields(AgreementResult)) == wire.AGREEMENT_FIELDS


@pytest.mark.parametrize("sufficient", [(True, False), (None, None), (False, None)])
def test_the_agreement_block_round_trips(sufficient) -> None:
    d, p = sufficient
    a = AgreementResult(
        top1_agree=False, confidence_gap=0.25, iou_first=0.5, iou_union=0.75,
        dense_sis_sufficient_for_pruned=d, pruned_sis_sufficient_for_dense=p,
        dense_sis_score_on_pruned=0.9 if d is not None else math.nan, pruned_sis_score_on_dense=math.nan,
        rank_correlation=-0.5, dense_sis_size=3, pruned_sis_size=4, divergent=True,
        reasons=("top1_differs", "low_iou", "pruned_not_confident"),
    )
    msg = pb.Agreement.FromString(wire.encode_agreement(a).SerializeToString())
    assert msg.HasField("dense_sis_sufficient_for_pruned") == (d is not None)
    back = wire.decode_agreement(msg)
    for name in wire.AGREEMENT_FIELDS:
        want, got = getattr(a, name), getattr(back, name)
        assert (math.isnan(want) and math.isnan(got)) if isinstance(want, float) and math.isnan(want) else want == got


def test_a_reason_the_reader_does_not_know_is_skipped() -> None:
    msg = pb.Agreement(divergent=True, reasons=[pb.LOW_IOU, 77])
    assert wire.decode_agreement(msg, dict)["reasons"] == ("low_iou",)


def test_the_codec_imports_neither_grpc_nor_a_side() -> None:
    code = (
        "import sys, sisguard.wire;"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc' or "
        "m.startswith(('sisguard.client', 'sisguard.server', 'sisguard.prune')))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == ""


def test_mypy_strict_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(WIRE_DIR)],
        capture_output=True, text=True, timeout=120, cwd=WIRE_DIR.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_message_reads_into_a_dataclass_that_mirrors_its_fields() -> None:
    @dataclasses.dataclass(frozen=True)
    class Measure:
        name: str
        samples: int
        damaged: bool

    got = wire.decode_fields(pb.MeasureExcess(name="output_tv", samples=7, damaged=True, margin=0.5), Measure)
    assert got == Measure("output_tv", 7, True)
    assert wire.decode_fields(pb.MeasureExcess(name="x"), Measure, samples=-1).samples == -1

    @dataclasses.dataclass
    class Shape:
        shape: list[int]
        dtypes: int

    with pytest.raises(AttributeError):  # a field the message does not have is a programming error
        wire.decode_fields(pb.Tensor(shape=[2]), Shape)
    assert wire.decode_fields(pb.Tensor(shape=[2, 3]), Shape, dtypes=0).shape == [2, 3]
