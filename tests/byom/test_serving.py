"""A text transformer (input_ids + attention_mask, dynamic sequence axis), a tabular MLP and a
scikit-learn model (label + probabilities outputs) served side by side: Predict against ONNX
Runtime in-process, Explain against the independent SIS reference, bad inputs with their status."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from support.byom_models import BAD, GOOD, MASK, PAD, TABULAR_FEATURES, ByomModels, tabular_data
from support.byom_pairs import text_pair
from support.server import running, write_config
from support.sis_reference import multi_input_score, ref_find_sis, session

from sisguard.client import AsyncClient, InvalidInput
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.sis import element_groups
from sisguard.wire import to_tensor


def sentence(length: int, good: int, bad: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(7, 40, size=length)
    pos = rng.permutation(length)[: good + bad]
    ids[pos[:good]] = GOOD
    ids[pos[good:]] = BAD
    return ids.astype(np.int64)


def test_the_trained_text_model_solves_its_task(byom: ByomModels) -> None:
    assert byom.text_accuracy >= 0.9


async def test_list_models_describes_inputs_features_and_text(byom_config: Path) -> None:
    async with running(byom_config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        pairs = {p.name: p for p in await c.models()}
    text = pairs["text"]
    assert text.input_name == "input_ids" and text.input_shape == (-1,)
    assert [(i.name, i.role, i.derive, i.shape) for i in text.inputs] == [
        ("input_ids", "features", "", (-1,)),
        ("attention_mask", "derived", "presence", (-1,)),
    ]
    assert text.text is not None and text.text.vocab_size == 64 and text.text.mask_token_id == MASK
    assert '"[MASK]"' in text.text.tokenizer_json
    assert text.explain_defaults.baseline == "pad_token"
    assert pairs["credit"].feature_names == tuple(TABULAR_FEATURES)
    assert pairs["logreg"].feature_names == tuple(TABULAR_FEATURES)
    assert pairs["logreg"].output_name == "probabilities"  # picked next to the integer label output


async def test_predict_matches_onnx_runtime_for_every_pair(byom_config: Path, byom: ByomModels) -> None:
    text_sess = {v: session(getattr(byom, f"text_{v}")) for v in ("dense", "pruned")}
    ids = np.stack([sentence(12, 2, 0, 1), sentence(12, 0, 2, 2), sentence(12, 1, 1, 3)])
    mask = np.ones_like(ids)
    ids[2, 9:], mask[2, 9:] = PAD, 0  # right padding
    x_tab = tabular_data(5, 7)[0]
    async with running(byom_config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        both = await c.predict("text", {"input_ids": ids, "attention_mask": mask})
        derived = await c.predict("text", {"input_ids": ids})  # attention_mask follows the pad tokens
        short = await c.predict("text", {"input_ids": ids[:, :5]})  # another length, same pair
        tab = await c.predict("credit", x_tab)
        logreg = await c.predict("logreg", x_tab)
    for v in ("dense", "pruned"):
        want = text_sess[v].run(None, {"input_ids": ids, "attention_mask": mask})[0]
        np.testing.assert_allclose(getattr(both, v).probabilities, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(getattr(derived, v).probabilities, want, rtol=1e-5, atol=1e-6)
        want_short = text_sess[v].run(None, {"input_ids": ids[:, :5], "attention_mask": (ids[:, :5] != PAD) * 1})[0]
        np.testing.assert_allclose(getattr(short, v).probabilities, want_short, rtol=1e-5, atol=1e-6)
        logits = session(getattr(byom, f"tabular_{v}")).run(None, {"features": x_tab})[0]
        e = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(getattr(tab, v).probabilities, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
        probs = session(getattr(byom, f"sklearn_{v}")).run(["probabilities"], {"X": x_tab})[0]
        np.testing.assert_allclose(getattr(logreg, v).probabilities, probs, rtol=1e-5, atol=1e-6)
    assert list(both.dense.top1) == [1, 0, 0]  # two "good"; two "bad"; one each (not more good than bad)


@pytest.mark.parametrize("length", [10, 16])
async def test_text_explain_matches_the_reference_at_each_length(
    byom_config: Path, byom: ByomModels, length: int
) -> None:
    ids = sentence(length, 2, 0, length)
    async with running(byom_config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        ex = await c.explain("text", {"input_ids": ids}, return_backselect=True)
    assert ex.num_features == length and ex.target == 1
    for variant in ("dense", "pruned"):
        f = multi_input_score(
            session(getattr(byom, f"text_{variant}")),
            "input_ids",
            ex.target,
            derived={"attention_mask": lambda z: (z != PAD).astype(np.int64)},
        )
        ref = ref_find_sis(ids, np.full_like(ids, PAD), element_groups(ids.shape), f, ex.threshold)
        got = getattr(ex, variant)
        assert got.status == ref.status
        if ref.status != "found":
            continue
        (ref_sis, ref_score), (_, scores) = ref.collection[0], ref.traces[0]
        assert set(got.sis[0].features.tolist()) == set(ref_sis)
        assert got.sis[0].score == pytest.approx(ref_score, abs=1e-4)
        np.testing.assert_allclose(np.sort(got.backselect[0].scores), np.sort(scores), atol=1e-4)
    # the rationale of "positive" holds the "good" tokens
    sis_tokens = ids[ex.dense.sis[0].mask]
    assert GOOD in sis_tokens


async def test_tabular_explain_matches_the_reference_with_the_mean_baseline(
    byom_config: Path, byom: ByomModels
) -> None:
    x = tabular_data(40, 9)[0]
    mean = np.load(byom.tabular_mean).astype(np.float32)
    async with running(byom_config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        done = 0
        for row in x:
            ex = await c.explain("credit", row, variants="dense")
            if ex.dense is None or ex.dense.status != "found":
                continue
            f = multi_input_score(session(byom.tabular_dense), "features", ex.target, softmax=True)
            ref = ref_find_sis(row, mean, element_groups(row.shape), f, ex.threshold)
            assert set(ex.dense.sis[0].features.tolist()) == set(ref.collection[0][0])
            assert ex.sis_names() == [TABULAR_FEATURES[f] for f in ex.dense.sis[0].features.tolist()]
            done += 1
            if done == 3:
                break
        # the scikit-learn pair explains through its probabilities output
        lr = await c.explain("logreg", x[0])
    assert done == 3
    assert lr.dense is not None and lr.dense.status in ("found", "not_confident", "baseline_sufficient")


async def test_passthrough_inputs_are_fed_with_every_masked_copy(tmp_path: Path, byom: ByomModels) -> None:
    """attention_mask passed through (not derived): masking a token to [MASK] keeps its attention."""
    pair = text_pair(
        byom,
        inputs=[
            {"name": "input_ids", "role": "features"},
            {"name": "attention_mask", "role": "passthrough"},
        ],
        explain={"baseline": "mask_token", "threshold": 0.8},
    )
    config = write_config(tmp_path, [pair], runtime={"providers": ["cpu"], "intra_op_threads": 1})
    ids = sentence(12, 2, 0, 5)
    mask = np.ones_like(ids)
    ids[10:], mask[10:] = PAD, 0
    async with running(config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        ex = await c.explain("text", {"input_ids": ids, "attention_mask": mask}, variants="dense")
        with pytest.raises(InvalidInput, match="input attention_mask missing"):
            await c.explain("text", {"input_ids": ids})
    f = multi_input_score(session(byom.text_dense), "input_ids", ex.target, passthrough={"attention_mask": mask})
    ref = ref_find_sis(ids, np.full_like(ids, MASK), element_groups(ids.shape), f, ex.threshold)
    assert ex.dense is not None and ex.dense.status == ref.status == "found"
    assert set(ex.dense.sis[0].features.tolist()) == set(ref.collection[0][0])


async def _status(call, request) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        await call(request, timeout=30)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


async def test_bad_inputs_are_invalid_argument_saying_what_was_expected(byom_config: Path) -> None:
    ids = sentence(10, 1, 0, 1)[None]
    t = to_tensor
    cases = [
        # missing features input: only the mask is sent
        (
            pb.PredictRequest(pair="text", named_inputs={"attention_mask": t(np.ones_like(ids))}),
            "input input_ids missing",
        ),
        # mismatched lengths of input_ids and attention_mask
        (
            pb.PredictRequest(
                pair="text", named_inputs={"input_ids": t(ids), "attention_mask": t(np.ones((1, 12), np.int64))}
            ),
            "their lengths must match",
        ),
        # out-of-vocabulary token id, naming the range
        (pb.PredictRequest(pair="text", inputs=t(np.array([[5, 64, 7]], np.int64))), "vocabulary is ids 0 to 63"),
        (pb.PredictRequest(pair="text", inputs=t(np.array([[5, -1, 7]], np.int64))), "vocabulary is ids 0 to 63"),
        # an input the model does not have
        (
            pb.PredictRequest(pair="text", named_inputs={"input_ids": t(ids), "pixels": t(ids)}),
            "unknown input 'pixels'",
        ),
        # wrong length of a fixed-shape (tabular) input
        (pb.PredictRequest(pair="credit", inputs=t(np.zeros((1, 5), np.float32))), "expected [batch, 6]"),
    ]
    explain_cases = [
        (
            pb.ExplainRequest(pair="text", input=t(ids[0]), named_inputs={"attention_mask": t(np.ones(11, np.int64))}),
            "their lengths must match",
        ),
        (pb.ExplainRequest(pair="text", input=t(np.array([3, 99], np.int64))), "vocabulary is ids 0 to 63"),
        # a derived mask that disagrees with the tokens' presence
        (
            pb.ExplainRequest(pair="text", input=t(ids[0]), named_inputs={"attention_mask": t(np.zeros(10, np.int64))}),
            "must be 1 exactly where input_ids is not the pad id 0",
        ),
        (pb.ExplainRequest(pair="credit", input=t(np.zeros(7, np.float32))), "expected one input [6]"),
    ]
    async with running(byom_config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        for request, words in cases:
            code, details = await _status(stub.Predict, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (words, code, details)
            assert words in details, (words, details)
        for request, words in explain_cases:
            for call in (stub.Explain,):
                code, details = await _status(call, request)
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (words, code, details)
                assert words in details, (words, details)
        # and the server goes on serving
        ok = await stub.Predict(pb.PredictRequest(pair="text", inputs=t(ids)), timeout=30)
        assert len(ok.dense.top1) == 1


async def test_explain_stream_carries_named_inputs_of_a_dynamic_length(byom_config: Path) -> None:
    ids = sentence(14, 2, 0, 11)
    async with running(byom_config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        events = [e async for e in c.explain_stream("text", {"input_ids": ids, "attention_mask": np.ones_like(ids)})]
        unary = await c.explain("text", {"input_ids": ids})
    *progress, result = events
    assert progress and all(e.features_left < 14 for e in progress)
    assert result.num_features == 14
    assert result.dense.sis[0].features.tolist() == unary.dense.sis[0].features.tolist()


async def test_limits_apply_to_each_request_of_a_dynamic_length(tmp_path: Path, byom: ByomModels) -> None:
    pair = text_pair(byom)
    pair["text"] = {**pair["text"], "max_length": 256}  # the model's position embeddings
    config = write_config(
        tmp_path,
        [pair],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
        limits={"max_elements": 500, "max_features": 48},
    )
    t = to_tensor
    ids = np.full((1, 250), 9, np.int64)
    async with running(config) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = pb_grpc.SISGuardStub(ch)
        # 250 ids alone fit; 251 ids with their mask are 502 elements together
        assert (await _status(stub.Predict, pb.PredictRequest(pair="text", inputs=t(ids))))[0] == grpc.StatusCode.OK
        longer = np.full((1, 251), 9, np.int64)
        both = pb.PredictRequest(pair="text", named_inputs={"input_ids": t(longer), "attention_mask": t(longer)})
        code, details = await _status(stub.Predict, both)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 500 elements" in details, details
        # longer than the model's position embeddings: refused naming the limit, before the model runs
        too_long = np.full((1, 300), 9, np.int64)
        code, details = await _status(stub.Predict, pb.PredictRequest(pair="text", inputs=t(too_long)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 256 (text.max_length)" in details, details
        # a sequence of 60 tokens is 60 features: over max_features, while 40 are explained
        code, details = await _status(stub.Explain, pb.ExplainRequest(pair="text", input=t(sentence(60, 2, 0, 1))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 48" in details, details
        ok = await stub.Explain(pb.ExplainRequest(pair="text", input=t(sentence(40, 2, 0, 1))), timeout=60)
        assert ok.num_features == 40
