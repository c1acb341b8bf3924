"""The Parquet schema of an audit: one row per input, columns per model and per compared model.

* ``id`` (dataset position), ``source`` (file name, array index or the dataset's ``id``),
  ``label`` (null without labels), ``num_features``, ``target`` (the dense top-1 class every
  model is explained for) and ``threshold`` (absolute τ).
* per model ``m`` in ``dense``, ``pruned``, ``control``: ``m_top1``, ``m_score`` (probability of the
  target), ``m_probs``, ``m_status``, ``m_sis`` (the SIS collection, most important feature first),
  ``m_sis_scores``, ``m_trace_order``/``m_trace_scores`` (one BackSelect round per SIS),
  ``m_baseline_score``, ``m_evaluations`` (the engine's count).
* per compared model ``o`` in ``pruned``, ``control`` (against the dense model): every field of
  :class:`sisguard.sis.AgreementResult` as ``o_agree_<field>``, and the verdict's explanation
  measures plus ``output_tv`` and ``top1_disagreement`` as ``o_<measure>``.

Where a value does not apply (no SIS on a side, no BackSelect trace) it is null, never NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

AGREEMENT_FIELDS = (
    "top1_agree",
    "confidence_gap",
    "iou_first",
    "iou_union",
    "dense_sis_sufficient_for_pruned",
    "pruned_sis_sufficient_for_dense",
    "dense_sis_score_on_pruned",
    "pruned_sis_score_on_dense",
    "rank_correlation",
    "dense_sis_size",
    "pruned_sis_size",
    "divergent",
    "reasons",
)
MEASURES = (
    "cross_insufficiency",
    "dense_sis_shortfall",
    "reverse_sis_shortfall",
    "sis_iou_distance",
    "deletion_gap",
    "rank_distance",
    "output_tv",
    "top1_disagreement",
)


def audit_schema(variants: tuple[str, ...]) -> pa.Schema:
    """The schema of every shard of an audit over ``variants`` (dense and pruned, maybe control)."""
    import pyarrow as pa

    ints = pa.list_(pa.int32())
    floats = pa.list_(pa.float64())
    cols: list[tuple[str, pa.DataType]] = [
        ("id", pa.int64()),
        ("source", pa.string()),
        ("label", pa.int64()),
        ("num_features", pa.int32()),
        ("target", pa.int32()),
        ("threshold", pa.float64()),
    ]
    for v in variants:
        cols += [
            (f"{v}_top1", pa.int32()),
            (f"{v}_score", pa.float64()),
            (f"{v}_probs", pa.list_(pa.float32())),
            (f"{v}_status", pa.string()),
            (f"{v}_sis", pa.list_(ints)),
            (f"{v}_sis_scores", floats),
            (f"{v}_trace_order", pa.list_(ints)),
            (f"{v}_trace_scores", pa.list_(floats)),
            (f"{v}_baseline_score", pa.float64()),
            (f"{v}_evaluations", pa.int64()),
        ]
    types = {
        "top1_agree": pa.bool_(),
        "dense_sis_sufficient_for_pruned": pa.bool_(),
        "pruned_sis_sufficient_for_dense": pa.bool_(),
        "divergent": pa.bool_(),
        "dense_sis_size": pa.int32(),
        "pruned_sis_size": pa.int32(),
        "reasons": pa.list_(pa.string()),
    }
    for o in (v for v in variants if v != "dense"):
        cols += [(f"{o}_agree_{f}", types.get(f, pa.float64())) for f in AGREEMENT_FIELDS]
        cols += [(f"{o}_{m}", pa.float64()) for m in MEASURES]
    return pa.schema(cols)
