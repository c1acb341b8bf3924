"""The verdict over windows of paired samples: excess over the control, intervals, decisions."""

from __future__ import annotations

import numpy as np
import pytest

from sisguard.server.signal.measures import measure_names
from sisguard.server.signal.verdict import Calibration, PairSignal, load_calibration

KNOWN = measure_names(["brightness-0.3"])


def signal(**kw) -> PairSignal:
    args = {"margins": {"output_tv": 0.02, "instability/brightness-0.3": 0.01}, "known": KNOWN,
            "has_control": True, "min_samples": 30, "bootstrap": 500}
    args.update(kw)
    return PairSignal("p", **args)


def feed(s: PairSignal, n: int, rng: np.random.Generator, tv_excess: float = 0.0, flip_excess: float = 0.0) -> None:
    for _ in range(n):
        control_tv = rng.uniform(0.0, 0.1)
        s.add("output_tv", control_tv + tv_excess + rng.normal(0, 0.01), control_tv)
        dense_flip, control_flip = float(rng.random() < 0.05), float(rng.random() < 0.05)
        s.add("instability/brightness-0.3", float(rng.random() < 0.05 + flip_excess), control_flip, dense_flip)


def test_too_few_samples_is_insufficient_data_and_says_how_many_more() -> None:
    s = signal()
    feed(s, 12, np.random.default_rng(0))
    r = s.report()
    assert r.verdict == "insufficient_data"
    assert r.samples == 12 and r.samples_needed == 18


def test_pruned_like_the_control_is_healthy() -> None:
    s = signal()
    feed(s, 200, np.random.default_rng(1))
    r = s.report()
    assert r.verdict == "healthy", [(e.name, e.lower, e.margin) for e in r.measures if e.deciding]
    tv = next(e for e in r.measures if e.name == "output_tv")
    assert tv.lower < 0.0 < tv.upper and tv.reference == "control"


def test_a_clear_excess_is_damaged_and_names_the_measure() -> None:
    s = signal()
    feed(s, 200, np.random.default_rng(2), tv_excess=0.08)
    r = s.report()
    assert r.verdict == "damaged"
    tv = next(e for e in r.measures if e.name == "output_tv")
    assert tv.damaged and tv.lower > 0.02 and tv.estimate == pytest.approx(0.08, abs=0.01)
    assert tv.samples_needed == 0


def test_instability_must_exceed_both_dense_and_control() -> None:
    """A pruned model less stable than the control but as stable as the dense model is not damaged."""
    s = signal(margins={"instability/brightness-0.3": 0.01})
    rng = np.random.default_rng(3)
    for _ in range(400):
        dense = float(rng.random() < 0.30)
        s.add("instability/brightness-0.3", dense, 0.0, dense)  # control never flips, pruned == dense
    e = next(e for e in s.report().measures if e.name == "instability/brightness-0.3")
    assert e.reference == "dense" and not e.damaged and e.estimate == 0.0


def test_intervals_are_joint_false_alarms_stay_rare() -> None:
    """Under no excess at all, 'damaged' comes up in at most a few of 60 independent windows."""
    rng = np.random.default_rng(4)
    alarms = 0
    for _ in range(60):
        s = signal(margins={"output_tv": 0.0, "top1_disagreement": 0.0, "instability/brightness-0.3": 0.0})
        feed(s, 60, rng)
        alarms += s.report().verdict == "damaged"
    assert alarms <= 6


def test_the_window_slides() -> None:
    s = signal(window=50)
    rng = np.random.default_rng(5)
    feed(s, 100, rng, tv_excess=0.2)  # an old incident ...
    feed(s, 50, rng)                   # ... pushed out by healthy samples
    assert s.report().verdict == "healthy"


def test_max_age_drops_old_samples() -> None:
    now = [0.0]
    s = signal(max_age_seconds=10.0, clock=lambda: now[0])
    feed(s, 100, np.random.default_rng(6))
    now[0] = 11.0
    assert s.report().samples == 0


def test_without_control_a_calibration_floor_decides(tmp_path) -> None:
    path = tmp_path / "cal.json"
    path.write_text('{"measures": {"output_tv": {"control_mean": 0.05, "control_sd": 0.03, "n": 300}}}')
    cal = load_calibration(str(path))
    assert cal["output_tv"] == Calibration(0.05, 0.03, 300)
    s = signal(has_control=False, calibration=cal)
    assert s.reference == "calibration" and "output_tv" in s.margins
    rng = np.random.default_rng(7)
    for _ in range(100):
        s.add("output_tv", 0.05 + 0.1 + rng.normal(0, 0.02))
    e = next(e for e in s.report().measures if e.name == "output_tv")
    assert e.reference == "calibration" and e.damaged


def test_without_control_or_calibration_only_self_measures_decide() -> None:
    s = signal(has_control=False)
    assert s.reference == "dense-only" and set(s.margins) == {"instability/brightness-0.3"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("not json", "not JSON"), ("{}", "no 'measures'"), ('{"measures": {"x": {"control_mean": 1}}}', "needs"),
     ('{"measures": {"x": {"control_mean": NaN, "control_sd": 0, "n": 3}}}', "non-finite")],
)
def test_bad_calibration_files_are_refused(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_calibration(str(path))
