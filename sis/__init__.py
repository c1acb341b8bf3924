"""sisguard.sis: the SIS engine — sufficient input subsets of any model, and how two models' agree.

Pure numpy + asyncio, importing nothing of the server or the client: the engine asks an async
score function for scores of masked batches and never sees a model, a session or a transport.

* :mod:`.features` — feature group maps (element, pixel, patch, explicit) and subset helpers.
* :mod:`.baselines` — values that masked features take.
* :mod:`.backselect` — BackSelect, FindSIS and SIS collections: the resumable search
  (:class:`SISSearch`) and its async driver (:func:`find_sis`).
* :mod:`.agreement` — pure measures between two SIS results (:func:`compute_agreement`).
* :mod:`.pair` — explain one input under several models and compare them (:func:`explain_pair`).
* :mod:`.errors` — the only exceptions the engine raises.
"""

from sisguard.sis.agreement import (
    AgreementResult,
    DivergenceReason,
    DivergenceThresholds,
    compute_agreement,
    first_sis,
    jaccard,
    rank_correlation,
)
from sisguard.sis.backselect import (
    BackSelectTrace,
    ProgressEvent,
    ScoreFn,
    ScoreRequest,
    SearchDriver,
    SISParams,
    SISResult,
    SISSearch,
    SISStatus,
    SubsetResult,
    backselect_cost,
    find_sis,
)
from sisguard.sis.baselines import constant_baseline, tensor_baseline, zero_baseline
from sisguard.sis.errors import BudgetExceeded, InvalidInput, ScoringError, SISError
from sisguard.sis.features import (
    element_groups,
    explicit_groups,
    feature_mask,
    num_features,
    patch_groups,
    pixel_groups,
    subset_input,
    validate_groups,
)
from sisguard.sis.pair import PairExplanation, explain_pair, score_along_path

__all__ = [
    "AgreementResult",
    "BackSelectTrace",
    "BudgetExceeded",
    "DivergenceReason",
    "DivergenceThresholds",
    "InvalidInput",
    "PairExplanation",
    "ProgressEvent",
    "SISError",
    "SISParams",
    "SISResult",
    "SISSearch",
    "SISStatus",
    "ScoreFn",
    "ScoreRequest",
    "ScoringError",
    "SearchDriver",
    "SubsetResult",
    "backselect_cost",
    "compute_agreement",
    "constant_baseline",
    "element_groups",
    "explain_pair",
    "explicit_groups",
    "feature_mask",
    "find_sis",
    "first_sis",
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
