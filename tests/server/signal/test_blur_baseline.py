"""The blurred-input baseline: masked pixels take the input's blurred value (server and SDK)."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.client import Baseline, Client, InvalidInput
from sisguard.server.signal.shifts import blur


def test_blur_keeps_the_mean_and_smooths() -> None:
    x = np.zeros((1, 8, 8), np.float32)
    x[0, 4, 4] = 1.0
    b = blur(x, 1.0)
    assert b.sum() == pytest.approx(1.0) and b.max() < 0.5 and b[0, 4, 4] == b.max()


def test_explain_with_a_blurred_baseline_is_what_the_engine_masks_with(default_server: str) -> None:
    """An empty SIS would mean the baseline itself is sufficient; with the blurred input as baseline,
    masking every feature of x gives blur(x), so f(blur(x)) is the reported baseline score."""
    x = np.load(_samples())["x"][3]
    with Client(default_server) as c:
        info = {p.name: p for p in c.models()}["digits"]
        assert info.explain_defaults.baseline == "blur"
        e = c.explain("digits", x, baseline=Baseline.blur())
        e_default = c.explain("digits", x)
        assert e.dense.status == "found"
        assert list(e.dense.sis[0].features) == list(e_default.dense.sis[0].features)
        pred = c.predict("digits", blur(x, 3.0).astype(np.float32)[None], variant="dense")
        target = e.target
        assert e.dense.baseline_score == pytest.approx(float(pred.dense.probabilities[0, target]), abs=1e-5)
        with pytest.raises(InvalidInput):
            Baseline.coerce("smudge")


def _samples():
    from importlib import resources

    return str(resources.files("sisguard.server") / "models" / "digits" / "samples.npz")


@pytest.fixture(scope="module")
def default_server():
    import asyncio
    import threading

    from sisguard.server.app import App
    from sisguard.server.config import load_settings

    settings = load_settings(None, port=0, metrics_port=0)  # a free port: never the default 9464
    loop = asyncio.new_event_loop()
    app = App(settings)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(app.start())
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(120)
    yield f"127.0.0.1:{app.port}"
    asyncio.run_coroutine_threadsafe(app.stop(grace=0.5), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)
