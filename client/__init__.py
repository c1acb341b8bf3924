"""sisguard client SDK: call a sisguard server from Python, numpy in and out.

>>> from sisguard.client import Client
>>> with Client("127.0.0.1:50051") as client:  # doctest: +SKIP
...     explanation = client.explain("digits", x, features="pixel")
...     explanation.dense.sis[0].mask, explanation.agreement.iou_first

:class:`Client` blocks, :class:`AsyncClient` is awaited; both have the same methods (``models``,
``predict``, ``explain``, ``explain_stream``, ``health``) built on one shared implementation.
Every failure is a :class:`SISGuardError`. Importing this package needs only the base install
(grpcio, protobuf, numpy, pydantic).
"""

from ._async import AsyncClient
from ._errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    SISGuardError,
    Unauthenticated,
    Unavailable,
)
from ._features import Baseline, Features, element_groups, patch_groups, pixel_groups
from ._options import TLS, UNSET, ExplainOptions, RetryPolicy
from ._results import (
    SIS,
    Agreement,
    BackSelectTrace,
    ExplainDefaults,
    ExplainProgress,
    Explanation,
    HealthStatus,
    ImageDefaults,
    InputInfo,
    MeasureExcess,
    ModelFile,
    PairHealth,
    PairInfo,
    Prediction,
    TextInfo,
    VariantExplanation,
    VariantPrediction,
)
from ._sync import Client

__all__ = [
    "SIS",
    "TLS",
    "UNSET",
    "Agreement",
    "AsyncClient",
    "BackSelectTrace",
    "Baseline",
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "ExplainDefaults",
    "ExplainOptions",
    "ExplainProgress",
    "Explanation",
    "Features",
    "HealthStatus",
    "ImageDefaults",
    "InputInfo",
    "InvalidInput",
    "MeasureExcess",
    "ModelFile",
    "NotFound",
    "PairHealth",
    "PairInfo",
    "PermissionDenied",
    "Prediction",
    "ResourceExhausted",
    "RetryPolicy",
    "SISGuardError",
    "ServerError",
    "TextInfo",
    "Unauthenticated",
    "Unavailable",
    "VariantExplanation",
    "VariantPrediction",
    "element_groups",
    "patch_groups",
    "pixel_groups",
]
