"""The CLI and the SDK on text and tabular pairs: raw text tokenized with the pair's tokenizer, the
SIS printed as highlighted words (colours or brackets), token strings in --json, pictures with
--plot; tabular SIS by feature name and a bar chart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.byom_models import ByomModels, tabular_data
from support.server import serving_in_thread

from sisguard.client import Client, InvalidInput
from sisguard.client.cli import main
from sisguard.client.text import highlight, tokenize, word_groups

pytest.importorskip("matplotlib")
pytest.importorskip("tokenizers")

TEXT = "w9 good w12 gReat w20 w31 good w8"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, byom: ByomModels) -> Iterator[str]:
    from support.byom_pairs import sklearn_pair, tabular_pair, text_pair
    from support.server import write_config

    tmp = tmp_path_factory.mktemp("byom-cli")
    config = write_config(
        tmp,
        [text_pair(byom), tabular_pair(byom), sklearn_pair(byom, tmp)],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )
    with serving_in_thread(config) as app:
        yield f"127.0.0.1:{app.port}"


def run(capsys: pytest.CaptureFixture[str], address: str, *argv: str) -> str:
    code = main([*argv, "--target-address", address])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def test_sdk_explains_raw_text_with_words_as_features(address: str) -> None:
    with Client(address) as c:
        info = next(p for p in c.models() if p.name == "text")
        tokens = tokenize(info, TEXT)
        assert tokens.tokens[3:5] == ("gr", "##eat")  # one word, two tokens
        pred = c.predict_text("text", TEXT)
        assert pred.dense is not None and int(pred.dense.top1[0]) == 1  # two "good", no "bad"
        by_token = c.explain_text("text", TEXT)
        by_word = c.explain_text("text", TEXT, words=True)
    assert by_token.explanation.num_features == len(tokens.ids)
    assert by_word.explanation.num_features == len(set(word_groups(tokens).tolist())) == len(tokens.ids) - 1
    for r in (by_token, by_word):
        assert "good" in r.sis_tokens("dense")
        assert "[good]" in r.highlighted("dense", colour=False)
    # a word's pieces are one feature: both in the SIS, or neither
    mask = by_word.explanation.dense.sis[0].mask
    assert mask[3] == mask[4]


def test_highlight_keeps_the_text_as_written(address: str) -> None:
    with Client(address) as c:
        info = next(p for p in c.models() if p.name == "text")
    tokens = tokenize(info, "Good,  gReat bad")
    mask = np.array([t in ("good", "gr", "##eat") for t in tokens.tokens])
    assert highlight(tokens, mask, colour=False) == "[Good],  [gReat] bad"
    assert highlight(tokens, mask) == "\x1b[1;30;43mGood\x1b[0m,  \x1b[1;30;43mgReat\x1b[0m bad"


def test_cli_text_prints_highlighted_words_json_tokens_and_a_picture(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, address, "explain", "text", "--text", TEXT, "--colour", "never")
    assert "dense   SIS 1:" in out and "[good]" in out
    out = run(capsys, address, "explain", "text", "--text", TEXT, "--colour", "always", "--variants", "dense")
    assert "\x1b[1;30;43mgood\x1b[0m" in out
    doc = json.loads(run(capsys, address, "explain", "text", "--text", TEXT, "--json", "--words"))
    assert doc["tokens"][3:5] == ["gr", "##eat"] and "good" in doc["dense"]["sis_tokens"][0]
    png = tmp_path / "text.png"
    run(capsys, address, "explain", "text", "--text", TEXT, "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pred = run(capsys, address, "predict", "text", "--text", TEXT)
    assert "positive" in pred


def test_cli_tabular_names_features_and_draws_a_bar_chart(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = tabular_data(40, 3)[0]
    row = next(r for r in x if r[1] - r[2] - 0.7 * r[4] > 1.0)  # clearly approved
    npy = tmp_path / "row.npy"
    np.save(npy, row)
    out = run(capsys, address, "explain", "credit", str(npy), "--variants", "dense")
    shown = out.split("SIS 1:")[1].split("[")[1].split("]")[0].split(", ")
    # named, and the features the label depends on (income - debt - 0.7 late_payments > 0)
    assert shown and set(shown) <= {"income", "debt", "late_payments"}, out
    png = tmp_path / "bars.png"
    run(capsys, address, "explain", "credit", str(npy), "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Client(address) as c:
        assert c.models()[1].feature_names[1] == "income"
        with pytest.raises(InvalidInput, match="no tokenizer"):
            c.explain_text("credit", "good")


def test_cli_token_ids_from_a_npy_file(address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([9, 5, 12, 5, 20], dtype=np.int64))  # one input of a dynamic length
    assert "positive" in run(capsys, address, "predict", "text", str(ids))
    doc = json.loads(run(capsys, address, "explain", "text", str(ids), "--json", "--variants", "dense"))
    assert doc["num_features"] == 5 and doc["dense"]["status"] == "found"
