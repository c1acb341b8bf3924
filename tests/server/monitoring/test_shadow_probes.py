"""Shadow explanations and noise probes: sampling, bounded queues, budgets, priority, and what they measure."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path

import numpy as np

from sisguard.server.background.probes import agreement_per_level, noisy_copies
from sisguard.server.background.sampling import RateLimiter, RowSampler


async def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- the sampler on its own -----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sampled = 0
        self.dropped: dict[str, int] = {}
        self.queue = 0

    def sampler(self, handle, **kw) -> RowSampler:
        defaults = dict(sample_rate=1.0, max_per_second=1000.0, queue_size=4)
        return RowSampler(
            "test",
            **{**defaults, **kw},
            handle=handle,
            on_sampled=lambda n: setattr(self, "sampled", self.sampled + n),
            on_dropped=lambda r, n: self.dropped.__setitem__(r, self.dropped.get(r, 0) + n),
            on_queue=lambda n: setattr(self, "queue", n),
            rng=np.random.default_rng(0),
        )


async def test_sampler_bounds_its_queue_and_counts_every_drop() -> None:
    rec = Recorder()
    gate = asyncio.Event()

    async def handle(row: np.ndarray) -> None:
        await gate.wait()

    s = rec.sampler(handle, queue_size=4)
    s.start()
    s.offer(np.zeros((10, 3), np.float32))
    assert rec.sampled == 10
    assert rec.dropped == {"queue_full": 6}
    await wait_for(lambda: rec.queue == 3, what="worker to take one row")
    await s.close()  # one row in progress, three queued
    assert rec.dropped == {"queue_full": 6, "shutdown": 4}
    assert rec.queue == 0
    assert s.offer(np.zeros((5, 3), np.float32)) == 0  # closed: nothing sampled


async def test_sampler_rate_and_failures() -> None:
    rec = Recorder()
    seen: list[float] = []

    async def handle(row: np.ndarray) -> None:
        seen.append(time.monotonic())
        if row[0] < 0:
            raise RuntimeError("boom")

    s = rec.sampler(handle, max_per_second=20.0, queue_size=100)
    s.start()
    s.offer(np.array([[-1.0]] + [[1.0]] * 9, np.float32))
    await wait_for(lambda: len(seen) >= 4, what="four handled rows")
    await s.close()
    assert 4 <= len(seen) < 10  # closed before the queue drained: the rest is dropped, not run
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(seen))  # at most 20/s, no bursts
    assert rec.dropped["failed"] == 1
    assert rec.dropped["shutdown"] == 10 - len(seen)


def test_sample_rate_is_a_share_of_rows() -> None:
    rec = Recorder()

    async def handle(row: np.ndarray) -> None: ...

    s = rec.sampler(handle, sample_rate=0.1, queue_size=10_000)
    s.offer(np.zeros((20_000, 1), np.float32))
    assert 1700 < rec.sampled < 2300


async def test_rate_limiter_spaces_acquisitions() -> None:
    lim = RateLimiter(50.0)
    start = time.monotonic()
    for _ in range(6):
        await lim.acquire()
    assert time.monotonic() - start >= 0.09  # five intervals of 20 ms


def test_noisy_copies_stay_within_eps_level_major() -> None:
    x = np.full((2, 3), 0.5, np.float32)
    batch = noisy_copies(x, [0.01, 0.3], 50, np.random.default_rng(0))
    assert batch.shape == (100, 2, 3) and batch.dtype == np.float32
    assert np.abs(batch[:50] - x).max() <= 0.01 + 1e-7
    assert np.abs(batch[50:] - x).max() > 0.2
    dense = np.eye(3)[[0, 1, 2, 0]]
    pruned = np.eye(3)[[0, 2, 2, 1]]
    assert agreement_per_level(dense, pruned, 2, 2) == [1, 1]


# -- against real ONNX models ---------------------------------------------------------------------


async def test_noise_probes_catch_a_pair_that_only_agrees_on_clean_inputs(tmp_path: Path, models, kit) -> None:
    probe = {
        "sample_rate": 0.0,
        "noise_probe": {"sample_rate": 1.0, "levels": [0.05, 0.2], "copies": 16, "max_per_second": 1000.0},
    }
    pairs = [
        kit.pair("same", models["dense"], models["dense"], shadow=probe),
        kit.pair("fragile", models["dense"], models["fragile"], shadow=probe),
    ]
    x = kit.grid_rows(6)
    async with kit.monitored_service(tmp_path, pairs) as m:
        for name in ("same", "fragile"):
            result = await m.service.predict(name, x, "both", None)
            assert result.top1_agree is not None and result.top1_agree.all()  # identical on clean inputs

        def copies(name: str, level: str) -> float:
            return m.value("sisguard_noise_probe_copies_total", pair=name, level=level)

        await wait_for(
            lambda: all(copies(p, lv) == 6 * 16 for p in ("same", "fragile") for lv in ("0.05", "0.2")),
            what="every sampled row probed",
        )
        for level in ("0.05", "0.2"):
            agree = {
                p: m.value("sisguard_noise_probe_top1_agree_copies_total", pair=p, level=level) / copies(p, level)
                for p in ("same", "fragile")
            }
            assert agree["same"] == 1.0
            assert agree["fragile"] < 0.5, agree
        assert m.value("sisguard_prediction_top1_agree_rows_total", pair="fragile") == 6
        assert m.value("sisguard_noise_probe_sampled_rows_total", pair="fragile") == 6
        assert m.value("sisguard_shadow_sampled_rows_total", pair="fragile") == 0  # shadow off


async def test_shadow_explanations_feed_agreement_metrics(tmp_path: Path, models, kit) -> None:
    shadow = {"sample_rate": 1.0, "max_per_second": 1000.0, "queue_size": 8, "noise_probe": {"sample_rate": 0.0}}
    async with kit.monitored_service(
        tmp_path, [kit.pair("mini", models["dense"], models["dense"], shadow=shadow)]
    ) as m:
        await m.service.predict("mini", kit.grid_rows(3, seed=1), "dense", None)  # any variant is sampled
        labels = {"pair": "mini", "source": "shadow"}
        await wait_for(lambda: m.value("sisguard_explanations_total", **labels) == 3, what="3 shadow explanations")
        assert m.value("sisguard_shadow_sampled_rows_total", pair="mini") == 3
        assert m.value("sisguard_agreement_explanations_total", **labels) == 3
        assert m.value("sisguard_agreement_top1_agree_total", **labels) == 3
        # the same model on both sides: identical rationales
        assert m.value("sisguard_agreement_iou_first_sum", **labels) == 3.0
        assert m.value("sisguard_agreement_divergent_total", **labels) == 0
        assert m.value("sisguard_explain_evaluations_total", variant="pruned", **labels) > 3 * 64
        assert m.value("sisguard_explanations_total", pair="mini", source="request") == 0


async def test_saturated_shadow_queue_never_slows_foreground_predict(tmp_path: Path, models, kit) -> None:
    """Same workload with shadow off and with a saturated shadow queue: Predict latency stays put."""
    x = kit.grid_rows(4, seed=2)

    async def latencies(shadow: dict) -> tuple[list[float], object]:
        d = tmp_path / str(shadow["sample_rate"])
        d.mkdir()
        async with kit.monitored_service(d, [kit.pair("mini", models["dense"], models["fragile"], shadow=shadow)]) as m:
            for _ in range(20):  # warm-up (and fills the shadow queue)
                await m.service.predict("mini", x, "both", None)
            out = []
            for _ in range(150):
                t0 = time.perf_counter()
                await m.service.predict("mini", x, "both", None)
                out.append(time.perf_counter() - t0)
            during = m.value("sisguard_batch_size_rows_count", pair="mini", variant="dense")
            if shadow["sample_rate"] > 0:  # the worker really explains (it may finish only after the timing)
                await wait_for(
                    lambda: m.value("sisguard_explanations_total", pair="mini", source="shadow") >= 1,
                    timeout=60,
                    what="a shadow explanation",
                )
            snapshot = {
                "dropped": m.value("sisguard_shadow_dropped_rows_total", pair="mini", reason="queue_full"),
                "explained": m.value("sisguard_explanations_total", pair="mini", source="shadow"),
                "batches_during_timing": during,
            }
            return out, snapshot

    off = {"sample_rate": 0.0, "noise_probe": {"sample_rate": 0.0}}
    on = {"sample_rate": 1.0, "max_per_second": 1000.0, "queue_size": 2, "noise_probe": {"sample_rate": 0.0}}
    base, base_stats = await latencies(off)
    busy, busy_stats = await latencies(on)
    assert base_stats["dropped"] == 0 and base_stats["explained"] == 0
    assert busy_stats["dropped"] > 100  # 4 sampled rows per call into a queue of 2
    assert busy_stats["explained"] >= 1  # the shadow worker was really running
    # same foreground work in both runs: the extra batches are shadow work running alongside it
    assert busy_stats["batches_during_timing"] > base_stats["batches_during_timing"] + 20
    p50_base, p50_busy = statistics.median(base), statistics.median(busy)
    print(
        f"predict p50 shadow off {p50_base * 1e3:.2f} ms, saturated shadow {p50_busy * 1e3:.2f} ms; "
        f"batches {base_stats['batches_during_timing']:.0f} vs {busy_stats['batches_during_timing']:.0f}"
    )
    # Generous: a background batch in progress may delay a foreground one by one small batch.
    assert p50_busy < 3 * p50_base + 0.005
