"""The unmodified tritonclient[grpc] package against sisguard's Open Inference Protocol service.

tritonclient registers its own copy of the ``inference.*`` protobuf messages, which cannot share a
process with the server's; so the server runs here and tritonclient in a child process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("tritonclient")

CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    url, mode = sys.argv[1], sys.argv[2]
    c = grpcclient.InferenceServerClient(url=url)
    out = {"live": c.is_server_live(), "ready": c.is_server_ready(),
           "models_ready": [c.is_model_ready("mini.dense"), c.is_model_ready("mini.pruned")],
           "server_name": c.get_server_metadata().name}
    meta = c.get_model_metadata("mini.pruned")
    out["input"] = [meta.inputs[0].name, meta.inputs[0].datatype, list(meta.inputs[0].shape)]
    out["output_shape"] = list(meta.outputs[0].shape)
    x = np.random.default_rng(3).random((5, 1, 8, 8), dtype=np.float32)
    results = {}
    for variant in ("dense", "pruned"):
        inp = grpcclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        if mode == "typed":  # typed contents (fp32_contents) instead of raw bytes
            inp._raw_content = None
            inp._input.contents.fp32_contents.extend(x.ravel().tolist())
        r = c.infer(f"mini.{variant}", [inp], outputs=[grpcclient.InferRequestedOutput("logits")], request_id="r1")
        results[variant] = r.as_numpy("logits").tolist()
        out["id"] = r.get_response().id
    out["logits"] = results
    errors = []
    try:
        c.get_model_metadata("nope.dense")
    except InferenceServerException as e:
        errors.append(e.message())
    bad = grpcclient.InferInput("input", [1, 8, 8], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 8, 8), np.float32))
    try:
        c.infer("mini.dense", [bad])
    except InferenceServerException as e:
        errors.append(e.message())
    out["errors"] = errors
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("mode", ["raw", "typed"])
async def test_tritonclient_infers_against_sisguard(app, model_pair, mode) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        f"127.0.0.1:{app.port}",
        mode,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    assert out["live"] and out["ready"] and out["models_ready"] == [True, True]
    assert out["server_name"] == "sisguard"
    assert out["input"] == ["input", "FP32", [-1, 1, 8, 8]]
    assert out["output_shape"] == [-1, 10]
    assert out["id"] == "r1"
    x = np.random.default_rng(3).random((5, 1, 8, 8), dtype=np.float32)
    for variant, path in zip(("dense", "pruned"), model_pair, strict=True):
        expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        np.testing.assert_allclose(np.array(out["logits"][variant]), expected, rtol=1e-5, atol=1e-6)
    unknown, wrong_shape = out["errors"]
    assert "unknown model 'nope.dense'" in unknown and "mini.dense" in unknown
    assert "expected [batch, 1, 8, 8]" in wrong_shape
