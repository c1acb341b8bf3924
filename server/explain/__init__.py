"""Transport-neutral SIS engine: sufficient input subsets of dense and pruned models, and their agreement.

Pure numpy + asyncio: the engine asks an async score function for scores of masked batches and
never sees a model, a session or a transport.

* :mod:`.features` — feature group maps (element, pixel, patch, explicit) and subset helpers.
* :mod:`.baselines` — values that masked features take.
* :mod:`.sis` — BackSelect, FindSIS and SIS collections (:func:`find_sis`).
* :mod:`.agreement` — dense vs pruned comparison (:func:`explain_pair`).
"""

from sisguard.server.explain.agreement import (
    AgreementResult,
    DivergenceReason,
    DivergenceThresholds,
    PairExplanation,
    compute_agreement,
    explain_pair,
    jaccard,
    rank_correlation,
    score_along_path,
)
from sisguard.server.explain.baselines import constant_baseline, tensor_baseline, zero_baseline
from sisguard.server.explain.features import (
    element_groups,
    explicit_groups,
    feature_mask,
    num_features,
    patch_groups,
    pixel_groups,
    subset_input,
    validate_groups,
)
from sisguard.server.explain.sis import (
    BackSelectTrace,
    ProgressEvent,
    ScoreFn,
    SISParams,
    SISResult,
    SISStatus,
    SubsetResult,
    backselect_cost,
    find_sis,
)

__all__ = [
    "AgreementResult",
    "BackSelectTrace",
    "DivergenceReason",
    "DivergenceThresholds",
    "PairExplanation",
    "ProgressEvent",
    "SISParams",
    "SISResult",
    "SISStatus",
    "ScoreFn",
    "SubsetResult",
    "backselect_cost",
    "compute_agreement",
    "constant_baseline",
    "element_groups",
    "explain_pair",
    "explicit_groups",
    "feature_mask",
    "find_sis",
    "jaccard",
    "num_features",
    "patch_groups",
    "pixel_groups",
    "rank_correlation",
    "score_along_path",
    "subset_input",
    "tensor_baseline",
    "validate_groups",
    "zero_baseline",
]
