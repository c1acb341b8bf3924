"""ModelInfer with the unmodified tritonclient on a two-input text model (dynamic sequence axis)
and a scikit-learn model with two outputs. tritonclient runs in a child process (its copy of the
``inference.*`` messages cannot share a process with the server's)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.byom_models import ByomModels, tabular_data
from support.server import running
from support.sis_reference import session

pytest.importorskip("tritonclient")

CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    c = grpcclient.InferenceServerClient(url=sys.argv[1])
    ids = np.array(json.loads(sys.argv[2]), dtype=np.int64)
    tab = np.array(json.loads(sys.argv[3]), dtype=np.float32)
    out = {}
    meta = c.get_model_metadata("text.dense")
    out["inputs"] = [[i.name, i.datatype, list(i.shape)] for i in meta.inputs]

    def text_inputs(ids, mask):
        a = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
        a.set_data_from_numpy(ids)
        b = grpcclient.InferInput("attention_mask", list(mask.shape), "INT64")
        b.set_data_from_numpy(mask)
        return [a, b]

    mask = (ids != 0).astype(np.int64)
    out["text"] = {v: c.infer(f"text.{v}", text_inputs(ids, mask)).as_numpy("probabilities").tolist()
                   for v in ("dense", "pruned")}
    only = grpcclient.InferInput("input_ids", list(ids.shape), "INT64")
    only.set_data_from_numpy(ids)
    out["derived"] = c.infer("text.dense", [only]).as_numpy("probabilities").tolist()
    t = grpcclient.InferInput("X", list(tab.shape), "FP32")
    t.set_data_from_numpy(tab)
    out["logreg"] = c.infer("logreg.dense", [t]).as_numpy("probabilities").tolist()
    errors = []
    for inputs in (text_inputs(ids, mask[:, :-1]), text_inputs(ids + 100, mask)):
        try:
            c.infer("text.dense", inputs)
            errors.append("OK")
        except InferenceServerException as e:
            errors.append(e.status() + " " + e.message())
    out["errors"] = errors
    print(json.dumps(out))
    """
)


async def test_tritonclient_infers_several_inputs_and_picks_the_probability_output(
    byom_config: Path, byom: ByomModels
) -> None:
    ids = np.array([[5, 5, 9, 12, 0, 0], [6, 8, 6, 5, 11, 10]], dtype=np.int64)
    tab = tabular_data(3, 4)[0]
    async with running(byom_config) as app:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            f"127.0.0.1:{app.port}",
            json.dumps(ids.tolist()),
            json.dumps(tab.tolist()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    assert out["inputs"] == [["input_ids", "INT64", [-1, -1]], ["attention_mask", "INT64", [-1, -1]]]
    mask = (ids != 0).astype(np.int64)
    for v in ("dense", "pruned"):
        want = session(getattr(byom, f"text_{v}")).run(None, {"input_ids": ids, "attention_mask": mask})[0]
        np.testing.assert_allclose(np.array(out["text"][v]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(out["derived"]), np.array(out["text"]["dense"]), rtol=1e-6)
    want = session(byom.sklearn_dense).run(["probabilities"], {"X": tab})[0]
    np.testing.assert_allclose(np.array(out["logreg"]), want, rtol=1e-5, atol=1e-6)
    mismatched, oov = out["errors"]
    assert mismatched.startswith("StatusCode.INVALID_ARGUMENT") and "lengths must match" in mismatched
    assert oov.startswith("StatusCode.INVALID_ARGUMENT") and "vocabulary is ids 0 to 63" in oov
