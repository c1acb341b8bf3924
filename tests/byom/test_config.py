"""Pair configs of several-input, tabular and text models: what start-up accepts, and the one line
it stops with when the config and the model do not fit together."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support.byom_models import TABULAR_FEATURES, ByomModels, tabular_data
from support.byom_pairs import tabular_pair, text_pair
from support.server import running, write_config

from sisguard.client import AsyncClient, InvalidInput
from sisguard.server.config import ConfigError, load_settings
from sisguard.server.pairs import Pair
from sisguard.server.runtime.model import ModelLoadError
from sisguard.server.runtime.providers import choose_providers


def load_pair(tmp: Path, pair: dict[str, Any]) -> Pair:
    settings = load_settings(write_config(tmp, [pair], runtime={"providers": ["cpu"], "intra_op_threads": 1}))
    return Pair(settings.pairs[0], settings.runtime, choose_providers(["cpu"], 0))


class TwoInputs(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b], dim=1)


def two_input_model(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TwoInputs(),
            (torch.zeros(1, 2), torch.zeros(1, 2)),
            str(path),
            input_names=["left", "right"],
            output_names=["scores"],
            dynamic_axes={"left": {0: "batch"}, "right": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def test_the_text_pair_is_detected_without_an_inputs_section(tmp_path: Path, byom: ByomModels) -> None:
    pair = load_pair(tmp_path, text_pair(byom))
    plan = pair.plan
    assert (plan.features.name, plan.features.shape) == ("input_ids", (-1,))
    assert [(i.name, i.role, i.derive) for i in plan.others] == [("attention_mask", "derived", "presence")]
    assert plan.vocab_size == 64 and pair.dynamic and pair.tokenizer_json


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ([{"name": "input_ids", "role": "features"}], "do not say how to feed attention_mask"),
        (
            [{"name": "input_ids", "role": "features"}, {"name": "mask", "role": "passthrough"}],
            "names input 'mask'",
        ),
        (
            [{"name": "input_ids", "role": "passthrough"}, {"name": "attention_mask", "role": "passthrough"}],
            "exactly one input must have role features",
        ),
    ],
)
def test_an_inputs_section_that_does_not_fit_stops_start_up(
    tmp_path: Path, byom: ByomModels, inputs: list[dict[str, str]], words: str
) -> None:
    with pytest.raises(ModelLoadError, match=words):
        load_pair(tmp_path, text_pair(byom, inputs=inputs))


def test_several_inputs_without_input_ids_need_the_config_to_say(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "two.onnx")
    base = {"name": "two", "dense": str(model), "pruned": str(model), "output_kind": "scores"}
    with pytest.raises(ModelLoadError, match=r"has 2 inputs \(left, right\).*input_name.*docs/byom.md"):
        load_pair(tmp_path, base)
    pair = load_pair(tmp_path, {**base, "input_name": "left"})
    assert [(i.name, i.role) for i in pair.plan.others] == [("right", "passthrough")]


async def test_a_passed_through_input_is_required_and_fed_as_sent(tmp_path: Path) -> None:
    model = two_input_model(tmp_path / "two.onnx")
    pair = {"name": "two", "dense": str(model), "pruned": str(model), "output_kind": "probabilities"}
    config = write_config(tmp_path, [{**pair, "input_name": "left"}], runtime={"providers": ["cpu"]})
    left = np.array([[0.2, 0.3]], np.float32)
    right = np.array([[0.1, 0.4]], np.float32)
    async with running(config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        pred = await c.predict("two", {"left": left, "right": right})
        np.testing.assert_allclose(pred.dense.probabilities, np.concatenate([left, right], 1))
        with pytest.raises(InvalidInput, match="input right missing"):
            await c.predict("two", left)


def test_feature_names_and_inline_means_must_fit_the_input(tmp_path: Path, byom: ByomModels) -> None:
    with pytest.raises(ConfigError, match="5 feature names configured, the input has 6 elements"):
        load_pair(tmp_path, tabular_pair(byom, feature_names=TABULAR_FEATURES[:5]))
    bad = tabular_pair(byom)
    bad["explain"] = {"baseline": "mean", "mean_values": [0.0, 1.0]}
    with pytest.raises(ConfigError, match="mean_values has 2 values"):
        load_pair(tmp_path, bad)
    with pytest.raises(ConfigError, match="baseline pad_token needs a text section"):
        load_pair(tmp_path, tabular_pair(byom, explain={"baseline": "pad_token"}))


async def test_inline_mean_values_explain_like_the_mean_file(tmp_path: Path, byom: ByomModels) -> None:
    mean = np.load(byom.tabular_mean)
    inline = tabular_pair(byom, name="inline")
    inline["explain"] = {"baseline": "mean", "mean_values": mean.tolist(), "threshold": 0.8}
    config = write_config(tmp_path, [tabular_pair(byom), inline], runtime={"providers": ["cpu"]})
    x = tabular_data(4, 11)[0]
    async with running(config) as app, AsyncClient(f"127.0.0.1:{app.port}") as c:
        for row in x:
            a, b = await c.explain("credit", row), await c.explain("inline", row)
            assert a.dense.status == b.dense.status
            assert [s.features.tolist() for s in a.dense.sis] == [s.features.tolist() for s in b.dense.sis]
