"""sisguard.audit: a dataset-wide rationale audit of a dense/pruned pair, and SIS clusters.

``sisguard audit`` explains every input of a dataset with the dense, the pruned and (when the pair
has one) the control model, in-process with :mod:`sisguard.sis` and ONNX Runtime, on a local
process pool or on Ray actors, and writes one Parquet row per input into resumable shards.
``sisguard audit-report`` clusters each model's SIS per class and reports which global patterns
the pruned model lost or gained.

* :mod:`.options` — what an audit is asked to do (pydantic).
* :mod:`.dataset` — ``.npz``, image folders and Parquet datasets, checked against the pair.
* :mod:`.spec` — everything a worker needs: model bytes, features, baseline, SIS parameters.
* :mod:`.worker` — explains a chunk of inputs (the code every backend runs).
* :mod:`.executors` — a local process pool and Ray actors behind one interface.
* :mod:`.store` — the manifest and the atomically written shards; what is done, what is left.
* :mod:`.runner` — plans chunks, drives an executor, writes shards, summarises.
* :mod:`.clusters` and :mod:`.report` — DBSCAN over Jaccard distances of SIS, and the report.
"""

from sisguard.audit.errors import AuditError

__all__ = ["AuditError"]
