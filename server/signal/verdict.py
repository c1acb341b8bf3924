"""The per-pair verdict: is the pruned model more divergent from the dense one than retraining alone?

Every measure of :mod:`.measures` arrives per input with a value for the pruned model and, on the
same input, for the control (the dense model retrained like the pruned one, not pruned). Over a
sliding window the verdict looks at the **excess** ``mean(pruned − control)`` with a paired
bootstrap interval; without a live control, at ``mean(pruned) − floor`` against the floor of an
offline calibration (``sisguard calibrate``), whose own uncertainty widens the interval. For
self-measures (instability) the reference is the *more unstable* of dense and control: the excess
is the smaller of the two, so a pruned model only counts as less stable than both.

Verdict of a pair, over the *deciding* measures (those with a configured margin):

* ``damaged`` — some deciding measure with at least ``min_samples`` samples has the lower bound of
  its excess interval above its margin;
* ``healthy`` — every deciding measure has ``min_samples`` samples and none is damaged;
* ``insufficient_data`` — otherwise (``samples_needed`` says how many more the slowest one needs).

Intervals are joint at ``confidence`` over the deciding measures (Bonferroni), so adding measures
does not raise the false-alarm rate; they are percentile bootstrap intervals. The remaining
measures are reported with normal-approximation intervals at the same per-measure level, and do
not decide.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np

from sisguard.server.signal.measures import is_self_measure, measure_source

Verdict = Literal["healthy", "damaged", "insufficient_data"]
VERDICTS: tuple[Verdict, ...] = ("healthy", "damaged", "insufficient_data")


@dataclass(frozen=True)
class Calibration:
    """The control floor of one measure, measured offline: mean, standard deviation and count."""

    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class MeasureEvidence:
    """One measure's excess over its reference, with its interval (NaN while there are no samples)."""

    name: str
    source: str  # explain | probe
    deciding: bool
    margin: float  # NaN when the measure does not decide
    samples: int
    pruned_mean: float
    reference_mean: float
    reference: str  # control | dense | calibration | none
    estimate: float
    lower: float
    upper: float
    samples_needed: int  # to tell the estimate from the margin at this confidence (0: already told)
    damaged: bool


@dataclass(frozen=True)
class VerdictReport:
    pair: str
    verdict: Verdict
    reference: str  # control | calibration | dense-only
    samples: int  # samples of the deciding measure with the fewest
    samples_needed: int  # more samples the verdict needs (0 when decided)
    min_samples: int
    confidence: float
    window: int
    measures: tuple[MeasureEvidence, ...] = field(default_factory=tuple)


class PairSignal:
    """Windows of per-input measure values for one pair, and the verdict over them.

    Args:
        pair: the pair's name.
        margins: deciding measure → margin (``resolve_margins`` output).
        known: every measure the pair reports.
        has_control: a live control runs beside the pair.
        calibration: offline control floors per measure (used when ``has_control`` is false).
        window, max_age_seconds, min_samples, confidence, bootstrap: see ``VerdictConfig``.
    """

    def __init__(
        self,
        pair: str,
        *,
        margins: Mapping[str, float],
        known: Sequence[str],
        has_control: bool,
        calibration: Mapping[str, Calibration] | None = None,
        window: int = 400,
        max_age_seconds: float | None = None,
        min_samples: int = 30,
        confidence: float = 0.95,
        bootstrap: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pair = pair
        self.has_control = has_control
        self.calibration = dict(calibration or {})
        self.reference = "control" if has_control else ("calibration" if self.calibration else "dense-only")
        # Without a control or a calibration, only measures with a dense value of their own can decide:
        # retraining alone moves the others, and nothing here says by how much.
        self.margins = {
            m: v for m, v in margins.items() if self._can_decide(m)
        }
        self.known = tuple(known)
        self.window = window
        self.max_age = max_age_seconds
        self.min_samples = min_samples
        self.confidence = confidence
        self.bootstrap = bootstrap
        self._clock = clock
        self._samples: dict[str, deque[tuple[float, float, float, float]]] = {
            m: deque(maxlen=window) for m in self.known
        }
        self.version = 0  # bumps on every added sample
        self._indices: dict[int, np.ndarray] = {}

    def _can_decide(self, measure: str) -> bool:
        return self.has_control or measure in self.calibration or is_self_measure(measure)

    # -- samples -----------------------------------------------------------------------------

    def add(self, measure: str, pruned: float, control: float = math.nan, dense: float = math.nan) -> None:
        """One input's value of ``measure`` for the pruned model, the control and (self-measures) dense."""
        q = self._samples.get(measure)
        if q is None or not math.isfinite(pruned):
            return
        q.append((self._clock(), float(pruned), float(control), float(dense)))
        self.version += 1

    def add_values(self, values: Mapping[str, Mapping[str, float]]) -> None:
        """``measure → {"pruned": v, "control": v, "dense": v}`` of one input."""
        for m, per in values.items():
            if "pruned" in per:
                self.add(m, per["pruned"], per.get("control", math.nan), per.get("dense", math.nan))

    def samples(self, measure: str) -> int:
        return len(self._samples.get(measure, ()))

    # -- evidence and verdict ----------------------------------------------------------------

    def snapshot(self) -> dict[str, np.ndarray]:
        """The windows as arrays ``[samples, (time, pruned, control, dense)]``; call on the thread that
        adds samples, then :meth:`report` may run anywhere (the bootstrap is the costly part)."""
        out: dict[str, np.ndarray] = {}
        cutoff = None if self.max_age is None else self._clock() - self.max_age
        for m, q in self._samples.items():
            if cutoff is not None:
                while q and q[0][0] < cutoff:
                    q.popleft()
            out[m] = np.array(q, dtype=np.float64).reshape(-1, 4)
        return out

    def _z(self) -> float:
        alpha = (1.0 - self.confidence) / max(1, len(self.margins))
        return NormalDist().inv_cdf(1.0 - alpha)

    def _boot(self, d: np.ndarray, rng: np.random.Generator, z: float) -> tuple[float, float]:
        """One-sided percentile bootstrap bounds of mean(d) at level Φ(z) each side."""
        n = len(d)
        q = 1.0 - NormalDist().cdf(z)
        idx = self._indices.get(n)
        if idx is None:  # the resampling indices depend only on n: reused across measures and reports
            if len(self._indices) >= 8:
                self._indices.clear()
            idx = rng.integers(0, n, size=(self.bootstrap, n), dtype=np.int32)
            self._indices[n] = idx
        means = d[idx].mean(axis=1)
        return float(np.quantile(means, q)), float(np.quantile(means, 1.0 - q))

    def _evidence(self, measure: str, rows: np.ndarray, z: float) -> MeasureEvidence:
        deciding = measure in self.margins
        margin = self.margins.get(measure, math.nan)
        pruned, control, dense = rows[:, 1], rows[:, 2], rows[:, 3]
        nan = math.nan
        candidates: list[tuple[str, np.ndarray, float, float]] = []  # (reference, paired diffs, ref mean, extra var)
        if self.has_control:
            ok = np.isfinite(control)
            ref = float(np.mean(control[ok])) if ok.any() else nan
            candidates.append(("control", pruned[ok] - control[ok], ref, 0))
        elif measure in self.calibration:
            c = self.calibration[measure]
            candidates.append(("calibration", pruned - c.mean, c.mean, c.sd**2 / max(c.n, 1)))
        if is_self_measure(measure):
            ok = np.isfinite(dense)
            ref = float(np.mean(dense[ok])) if ok.any() else nan
            candidates.append(("dense", pruned[ok] - dense[ok], ref, 0))
        if not candidates:
            candidates.append(("none", pruned.copy(), 0.0, 0))
        rng = np.random.default_rng(len(rows))  # stable for the same window: a scrape repeats
        evidences: list[MeasureEvidence] = []
        for reference, d, ref_mean, extra_var in candidates:
            n = len(d)
            if n == 0:
                evidences.append(MeasureEvidence(
                    measure, measure_source(measure), deciding, margin, 0, nan, ref_mean, reference,
                    nan, nan, nan, self.min_samples, False,
                ))
                continue
            est = float(np.mean(d))
            if n < 2 or float(np.ptp(d)) == 0:
                lo = hi = est
            elif deciding:
                lo, hi = self._boot(d, rng, z)
            else:  # reported only: a normal interval is enough and costs no resampling
                half = z * float(np.std(d, ddof=1)) / math.sqrt(n)
                lo, hi = est - half, est + half
            if extra_var:
                widen = z * math.sqrt(extra_var)
                lo, hi = est - math.hypot(est - lo, widen), est + math.hypot(hi - est, widen)
            damaged = deciding and n >= self.min_samples and lo > margin
            evidences.append(MeasureEvidence(
                measure, measure_source(measure), deciding, margin, n, float(np.mean(pruned)), ref_mean,
                reference, est, lo, hi, self._needed(d, est, margin, z, n, damaged), damaged,
            ))
        # Several references (self-measures: control and dense): the pruned model is damaged only
        # against every one; the evidence shown is the one where it looks least divergent.
        best = min(evidences, key=lambda e: e.estimate if math.isfinite(e.estimate) else -math.inf)
        return replace(
            best,
            damaged=all(e.damaged for e in evidences),
            samples_needed=max(e.samples_needed for e in evidences),
        )

    def _needed(self, d: np.ndarray, est: float, margin: float, z: float, n: int, damaged: bool) -> int:
        if damaged or not math.isfinite(margin):
            return 0
        sd = float(np.std(d, ddof=1)) if n >= 2 else math.nan
        gap = abs(est - margin)
        total = math.ceil((z * sd / gap) ** 2) if math.isfinite(sd) and sd > 0 and gap > 0 else 0
        return max(total - n, self.min_samples - n, 0)

    def report(self, snapshot: Mapping[str, np.ndarray] | None = None) -> VerdictReport:
        """The verdict over ``snapshot`` (taken now when not given)."""
        snap = self.snapshot() if snapshot is None else snapshot
        z = self._z()
        evidence = tuple(self._evidence(m, snap[m], z) for m in self.known)
        deciding = [e for e in evidence if e.deciding]
        if any(e.damaged for e in deciding):
            verdict: Verdict = "damaged"
        elif deciding and all(e.samples >= self.min_samples for e in deciding):
            verdict = "healthy"
        else:
            verdict = "insufficient_data"
        fewest = min((e.samples for e in deciding), default=0)
        needed = max((self.min_samples - e.samples for e in deciding), default=0)
        needed = needed if verdict == "insufficient_data" else 0
        return VerdictReport(
            pair=self.pair,
            verdict=verdict,
            reference=self.reference,
            samples=fewest,
            samples_needed=max(needed, 0),
            min_samples=self.min_samples,
            confidence=self.confidence,
            window=self.window,
            measures=evidence,
        )


def load_calibration(path: str) -> dict[str, Calibration]:
    """Read the ``measures`` block of a ``sisguard calibrate`` JSON file; raises ValueError when malformed."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read calibration file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"calibration file {path} is not JSON: {exc}") from exc
    measures = doc.get("measures") if isinstance(doc, dict) else None
    if not isinstance(measures, dict):
        raise ValueError(f"calibration file {path} has no 'measures' mapping")
    out: dict[str, Calibration] = {}
    for name, v in measures.items():
        try:
            c = Calibration(float(v["control_mean"]), float(v["control_sd"]), int(v["n"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration file {path}: measure {name!r} needs control_mean, control_sd, n") from exc
        if not (math.isfinite(c.mean) and math.isfinite(c.sd) and c.n >= 1):
            raise ValueError(f"calibration file {path}: measure {name!r} has non-finite values or n < 1")
        out[name] = c
    return out
