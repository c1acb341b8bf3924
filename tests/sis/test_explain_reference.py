"""find_sis against an independent, deliberately plain re-implementation of the SIS semantics.

The reference below shares no code with the engine: it masks with ``np.where`` one feature at a
time, scores one input per call and selects with ``sorted``. Score functions score each row on its
own, so the engine (batched, chunked) and the reference see bit-identical scores and ties break
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sisguard.sis import (
    SISParams,
    element_groups,
    explicit_groups,
    find_sis,
    patch_groups,
    pixel_groups,
)

Single = Callable[[np.ndarray], float]


# --------------------------------------------------------------------------- reference


def ref_mask(x: np.ndarray, baseline: np.ndarray, groups: np.ndarray, masked: set[int]) -> np.ndarray:
    out = x.copy()
    for g in masked:
        out = np.where(groups == g, baseline, out)
    return out


@dataclass
class RefResult:
    status: str
    collection: list[tuple[tuple[int, ...], float]] = field(default_factory=list)
    traces: list[tuple[list[int], list[float]]] = field(default_factory=list)
    evaluations: int = 0


def ref_find_sis(
    x: np.ndarray,
    baseline: np.ndarray,
    groups: np.ndarray,
    f: Single,
    tau: float,
    max_sis: int = 1,
    batch_k: int = 1,
) -> RefResult:
    calls = [0]

    def score(z: np.ndarray) -> float:
        calls[0] += 1
        return float(f(z))

    d = int(groups.max()) + 1
    full = score(x)
    base = score(baseline)
    if full < tau:
        return RefResult("not_confident", evaluations=calls[0])
    if base >= tau:
        return RefResult("baseline_sufficient", [((), base)], evaluations=calls[0])

    result = RefResult("found")
    masked: set[int] = set()
    while len(result.collection) < max_sis:
        remaining = [g for g in range(d) if g not in masked]
        if not remaining:
            break
        if result.collection:
            start = score(ref_mask(x, baseline, groups, masked))
            if start < tau:
                break
        else:
            start = full

        removed = set(masked)
        left = list(remaining)
        order: list[int] = []
        scores: list[float] = []
        exact: list[bool] = []
        while left:
            alone = {g: score(ref_mask(x, baseline, groups, removed | {g})) for g in left}
            chosen = sorted(left, key=lambda g: (-alone[g], g))[:batch_k]
            for g in chosen:
                left.remove(g)
                removed.add(g)
            for g in chosen[:-1]:
                order.append(g)
                scores.append(alone[g])
                exact.append(False)
            order.append(chosen[-1])
            if len(chosen) > 1:
                scores.append(score(ref_mask(x, baseline, groups, removed)))
            else:
                scores.append(alone[chosen[-1]])
            exact.append(True)

        s = [start, *scores]
        k = max(j for j in range(len(order)) if s[j] >= tau)
        sis = tuple(reversed(order[k:]))
        sis_score = s[k]
        if k > 0 and not exact[k - 1]:  # batched estimate: re-score the subset itself
            sis_score = score(ref_mask(x, baseline, groups, masked | set(order[:k])))
        result.collection.append((sis, sis_score))
        result.traces.append((order, scores))
        masked |= set(sis)
    result.evaluations = calls[0]
    return result


# --------------------------------------------------------------------------- score models


def mlp(rng: np.random.Generator, n_in: int) -> Single:
    hidden, classes = 8, 3
    w1 = rng.normal(size=(n_in, hidden))
    b1 = rng.normal(size=hidden)
    w2 = rng.normal(size=(hidden, classes)) * 2
    target = int(rng.integers(classes))

    def f(z: np.ndarray) -> float:
        h = np.tanh(z.ravel().astype(np.float64) @ w1 + b1)
        logits = h @ w2
        e = np.exp(logits - logits.max())
        return float(e[target] / e.sum())

    return f


def linear(rng: np.random.Generator, n_in: int) -> Single:
    theta = rng.normal(size=n_in)
    return lambda z: float(z.ravel().astype(np.float64) @ theta)


def l2(rng: np.random.Generator, n_in: int) -> Single:
    return lambda z: float(np.sqrt(np.sum(z.astype(np.float64) ** 2)))


def batched(f: Single, log: list[int] | None = None):
    async def score(batch: np.ndarray) -> np.ndarray:
        if log is not None:
            log.append(batch.shape[0])
        return np.array([f(row) for row in batch], dtype=np.float64)

    return score


def make_groups(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "element":
        return element_groups(shape)
    if kind == "pixel":
        return pixel_groups(shape)
    if kind == "patch":
        return patch_groups(shape, 2, 2)
    # explicit: a random partition of the spatial plane (or of the elements for 1-D inputs)
    plane = shape[-2:] if len(shape) == 3 else shape
    n = int(np.prod(plane))
    d = int(rng.integers(2, min(n, 9) + 1))
    labels = np.concatenate([np.arange(d), rng.integers(0, d, size=n - d)])
    rng.shuffle(labels)
    return explicit_groups(labels.reshape(plane), shape)


SHAPES = {"element": [(7,), (3, 3), (2, 2, 3)], "pixel": [(2, 3, 3), (3, 4)], "patch": [(2, 4, 5), (5, 5)]}
SHAPES["explicit"] = [(10,), (2, 3, 4), (4, 4)]


N_CASES = 288  # every threshold position x batch_k x max_sis, four times


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    kind = ["element", "pixel", "patch", "explicit"][int(rng.integers(4))]
    shapes = SHAPES[kind]
    shape = shapes[int(rng.integers(len(shapes)))]
    dtype = [np.float32, np.float64][int(rng.integers(2))]
    x = rng.normal(size=shape).astype(dtype)
    baseline_kind = ["zeros", "constant", "custom"][int(rng.integers(3))]
    if baseline_kind == "zeros":
        baseline = np.zeros(shape, dtype)
    elif baseline_kind == "constant":
        baseline = np.full(shape, rng.normal(), dtype)
    else:
        baseline = rng.normal(size=shape).astype(dtype)
    factory = [mlp, linear, l2][int(rng.integers(3))]
    model = factory(rng, int(np.prod(shape)))
    # orient the score so that f(x) > f(baseline); a negated score is as good a score as any
    f = model if model(x) > model(baseline) else (lambda z: -model(z))
    groups = make_groups(kind, shape, rng)
    full, base = f(x), f(baseline)
    u = [0.1, 0.3, 0.5, 0.8, 1.2, -0.3][seed % 6]  # 1.2: not confident, -0.3: baseline sufficient
    tau = base + u * (full - base)
    batch_k = [1, 1, 2, 3][(seed // 6) % 4]
    max_sis = 1 + (seed // 24) % 3
    return x, baseline, groups, f, float(tau), max_sis, batch_k, (kind, baseline_kind, factory.__name__)


def assert_matches(result, ref: RefResult) -> None:
    assert result.status == ref.status
    assert [s.features for s in result.collection] == [s for s, _ in ref.collection]
    np.testing.assert_allclose([s.score for s in result.collection], [v for _, v in ref.collection], rtol=1e-12)
    assert [t.order for t in result.backselect] == [tuple(o) for o, _ in ref.traces]
    for trace, (_, scores) in zip(result.backselect, ref.traces, strict=True):
        np.testing.assert_allclose(trace.scores, scores, rtol=1e-12, atol=0)
    assert result.evaluations == ref.evaluations


@pytest.mark.parametrize("seed", range(N_CASES))
async def test_matches_reference_on_random_models(seed: int) -> None:
    x, baseline, groups, f, tau, max_sis, batch_k, _ = random_case(seed)
    rows: list[int] = []
    params = SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k, chunk_size=1 + seed % 7)
    result = await find_sis(x, baseline, groups, batched(f, rows), params)
    ref = ref_find_sis(x, baseline, groups, f, tau, max_sis=max_sis, batch_k=batch_k)
    assert_matches(result, ref)
    assert sum(rows) == result.evaluations
    assert max(rows) <= params.chunk_size


def test_random_cases_cover_every_status_and_mode() -> None:
    seen: set[tuple[str, object]] = set()
    for seed in range(N_CASES):
        x, baseline, groups, f, tau, max_sis, batch_k, tags = random_case(seed)
        ref = ref_find_sis(x, baseline, groups, f, tau, max_sis=max_sis, batch_k=batch_k)
        seen |= {("status", ref.status), ("dtype", x.dtype.name), *(("tag", t) for t in tags)}
        if ref.status == "found":
            seen.add(("found", (batch_k, len(ref.collection))))
    assert {("status", s) for s in ("found", "not_confident", "baseline_sufficient")} <= seen
    assert {("dtype", "float32"), ("dtype", "float64")} <= seen
    tags = ("element", "pixel", "patch", "explicit", "zeros", "constant", "custom", "mlp", "linear", "l2")
    assert {("tag", t) for t in tags} <= seen
    assert {("found", (k, n)) for k in (1, 2, 3) for n in (1, 2, 3)} <= seen


finite = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(finite, min_size=1, max_size=8),
    theta_seed=st.integers(0, 2**16),
    model=st.sampled_from(["linear", "l2"]),
    tau=st.floats(-2, 6, allow_nan=False),
    max_sis=st.integers(1, 3),
    batch_k=st.integers(1, 3),
)
async def test_matches_reference_property(
    values: list[float], theta_seed: int, model: str, tau: float, max_sis: int, batch_k: int
) -> None:
    x = np.array(values)
    rng = np.random.default_rng(theta_seed)
    f = linear(rng, x.size) if model == "linear" else l2(rng, x.size)
    baseline = np.zeros_like(x)
    groups = element_groups(x.shape)
    params = SISParams(threshold=tau, max_sis=max_sis, batch_k=batch_k, chunk_size=3)
    result = await find_sis(x, baseline, groups, batched(f), params)
    assert_matches(result, ref_find_sis(x, baseline, groups, f, tau, max_sis=max_sis, batch_k=batch_k))
