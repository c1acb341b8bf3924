"""Explain a chunk of inputs with every model of a pair: the code each backend's worker runs.

A :class:`ChunkWorker` holds one ONNX Runtime session per model (one intra-op thread each: a
worker is one core's worth of work, parallelism comes from more workers) and explains inputs one
after the other with :func:`sisguard.sis.explain_pair`. Per input it records each model's
prediction, SIS collection and BackSelect traces, the agreement of pruned and control with the
dense model, and the explanation measures of sisguard's verdict (the deletion path needs each
other model scored along the dense BackSelect path). Results come back as plain column lists, so
the driver builds identical Parquet whichever backend ran them.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numpy as np

from sisguard.audit.schema import AGREEMENT_FIELDS, MEASURES
from sisguard.audit.spec import WorkerSpec


@dataclass(frozen=True)
class Chunk:
    """Inputs ``ids`` (dataset positions) with their arrays; ``index`` names the shard."""

    index: int
    ids: np.ndarray
    x: np.ndarray
    labels: np.ndarray | None
    sources: list[str]


@dataclass(frozen=True)
class ChunkOutput:
    index: int
    columns: dict[str, list]
    rows: dict[str, int]  # model rows run per variant
    seconds: float
    worker: str


def _one_thread_pools() -> object | None:
    """A worker is one core's worth of work: BLAS/OpenMP pools of one thread (as Ray sets for its
    actors through OMP_NUM_THREADS), so workers do not oversubscribe the cores they share."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn (the audit extra)
        return None
    return threadpool_limits(limits=1)


def _finite(value: object) -> object:
    """NaN (the engine's "does not apply") becomes None: a null in Parquet."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _softmax(raw: np.ndarray) -> np.ndarray:
    shifted = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(shifted, dtype=np.float64)
    return e / e.sum(axis=1, keepdims=True)


class ChunkWorker:
    """Sessions for every model of the spec; :meth:`explain` turns a chunk into columns."""

    def __init__(self, spec: WorkerSpec) -> None:
        import onnxruntime as ort

        from sisguard.server.runtime.providers import choose_providers, create_session

        self.spec = spec
        self._limits = _one_thread_pools()
        choice = choose_providers(list(spec.providers), 0)
        self.sessions = {}
        for model in spec.models:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            session, _ = create_session(model.data, choice, options)  # type: ignore[arg-type]
            self.sessions[model.variant] = session
        self.provider = next(iter(self.sessions.values())).get_providers()[0]
        self.name = f"{os.uname().nodename}:{os.getpid()}"
        self._rows = dict.fromkeys(self.sessions, 0)

    # -- models -----------------------------------------------------------------------------

    def _probs(self, variant: str, batch: np.ndarray) -> np.ndarray:
        spec = self.spec
        (out,) = self.sessions[variant].run([spec.output_name], {spec.input_name: batch})
        self._rows[variant] += int(batch.shape[0])
        raw = np.asarray(out, dtype=np.float64).reshape(batch.shape[0], -1)
        return _softmax(raw) if spec.output_kind == "logits" else raw

    def _score_fn(self, variant: str, target: int):  # type: ignore[no-untyped-def]
        async def score(batch: np.ndarray) -> np.ndarray:
            return self._probs(variant, np.ascontiguousarray(batch))[:, target]

        return score

    def _baseline(self, x: np.ndarray) -> np.ndarray:
        from sisguard.sis import constant_baseline, zero_baseline

        spec = self.spec
        if spec.baseline_kind == "blur":
            from sisguard.server.signal.shifts import blur

            return blur(x, spec.baseline_blur_sigma).astype(spec.input_dtype)
        if spec.baseline_kind == "constant":
            return constant_baseline(spec.input_shape, spec.baseline_constant, spec.input_dtype)
        if spec.baseline_kind == "mean" and spec.baseline_tensor is not None:
            return spec.baseline_tensor
        return zero_baseline(spec.input_shape, spec.input_dtype)

    # -- one input --------------------------------------------------------------------------

    async def _one(self, x: np.ndarray) -> dict[str, object]:
        from sisguard.server.signal.measures import explanation_measures
        from sisguard.sis import DivergenceThresholds, SISParams, explain_pair, score_along_path

        spec = self.spec
        variants = spec.variants
        probs = {v: self._probs(v, x[None])[0] for v in variants}
        top1 = {v: int(np.argmax(p)) for v, p in probs.items()}
        target = top1["dense"]
        tau = spec.threshold * float(probs["dense"][target]) if spec.threshold_relative else spec.threshold
        params = SISParams(
            threshold=tau,
            max_sis=spec.max_sis,
            batch_k=spec.batch_k,
            max_evaluations=spec.max_evaluations,
            allow_partial=spec.allow_partial,
            chunk_size=spec.chunk_size,
        )
        baseline = self._baseline(x)
        has_control = "control" in variants
        e = await explain_pair(
            x,
            baseline,
            spec.groups,
            dense_score=self._score_fn("dense", target),
            pruned_score=self._score_fn("pruned", target),
            params=params,
            dense_top1=top1["dense"],
            pruned_top1=top1["pruned"],
            thresholds=DivergenceThresholds(spec.min_iou, spec.min_rank_correlation, spec.require_cross_sufficiency),
            target=target,
            control_score=self._score_fn("control", target) if has_control else None,
            control_top1=top1.get("control"),
        )
        row: dict[str, object] = {"target": target, "threshold": float(tau)}
        results = {"dense": e.dense, "pruned": e.pruned, "control": e.control}
        for v in variants:
            r = results[v]
            if r is None:  # explain_pair explains every variant it is given a score function for
                raise RuntimeError(f"the {v} model was not explained")
            row[f"{v}_top1"] = top1[v]
            row[f"{v}_score"] = float(probs[v][target])
            row[f"{v}_probs"] = [float(p) for p in probs[v]]
            row[f"{v}_status"] = r.status
            row[f"{v}_sis"] = [list(s.features) for s in r.collection]
            row[f"{v}_sis_scores"] = [float(s.score) for s in r.collection]
            row[f"{v}_trace_order"] = [list(t.order) for t in r.backselect]
            row[f"{v}_trace_scores"] = [list(t.scores) for t in r.backselect]
            row[f"{v}_baseline_score"] = _finite(float(r.baseline_score))
            row[f"{v}_evaluations"] = int(r.evaluations)
        dense = e.dense
        order = dense.backselect[0].order if dense is not None and dense.backselect else ()
        for other, agreement in (("pruned", e.agreement), ("control", e.control_agreement)):
            if other not in variants:
                continue
            for f in AGREEMENT_FIELDS:
                value = None if agreement is None else getattr(agreement, f)
                row[f"{other}_agree_{f}"] = list(value) if f == "reasons" and value is not None else _finite(value)
            path = None
            if order:
                path = await score_along_path(
                    self._score_fn(other, target), x, baseline, spec.groups, order, spec.chunk_size
                )
            values: dict[str, float] = {}
            result = results[other]
            if dense is not None and result is not None and agreement is not None:
                values = explanation_measures(
                    dense,
                    result,
                    threshold=tau,
                    other_on_dense_sis=None
                    if math.isnan(agreement.dense_sis_score_on_pruned)
                    else agreement.dense_sis_score_on_pruned,
                    dense_on_other_sis=None
                    if math.isnan(agreement.pruned_sis_score_on_dense)
                    else agreement.pruned_sis_score_on_dense,
                    other_on_dense_path=path,
                )
            values["output_tv"] = 0.5 * float(np.abs(probs["dense"] - probs[other]).sum())
            values["top1_disagreement"] = float(top1["dense"] != top1[other])
            for m in MEASURES:
                row[f"{other}_{m}"] = _finite(values.get(m))
        return row

    # -- a chunk ----------------------------------------------------------------------------

    def explain(self, chunk: Chunk) -> ChunkOutput:
        """Explain every input of ``chunk``, in order."""
        started = time.perf_counter()
        self._rows = dict.fromkeys(self.sessions, 0)

        async def run() -> list[dict[str, object]]:
            return [await self._one(np.ascontiguousarray(x)) for x in chunk.x]

        # A thread of its own: the host may already run an event loop on this thread (Ray actors do).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sisguard-audit") as thread:
            rows = thread.submit(asyncio.run, run()).result()
        columns: dict[str, list] = {
            "id": [int(i) for i in chunk.ids],
            "source": list(chunk.sources),
            "label": [None] * len(chunk.ids) if chunk.labels is None else [int(v) for v in chunk.labels],
            "num_features": [self.spec.num_features] * len(chunk.ids),
        }
        for key in rows[0] if rows else ():
            columns[key] = [r[key] for r in rows]
        return ChunkOutput(chunk.index, columns, dict(self._rows), time.perf_counter() - started, self.name)


def agreement_field_names() -> tuple[str, ...]:
    """Every field of :class:`sisguard.sis.AgreementResult` (kept in step with the schema by a test)."""
    from sisguard.sis import AgreementResult

    return tuple(f.name for f in fields(AgreementResult))
