from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    FLOAT32: _ClassVar[DataType]
    FLOAT64: _ClassVar[DataType]
    FLOAT16: _ClassVar[DataType]
    INT64: _ClassVar[DataType]
    INT32: _ClassVar[DataType]
    INT16: _ClassVar[DataType]
    INT8: _ClassVar[DataType]
    UINT8: _ClassVar[DataType]
    BOOL: _ClassVar[DataType]

class Variant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIANT_UNSPECIFIED: _ClassVar[Variant]
    DENSE: _ClassVar[Variant]
    PRUNED: _ClassVar[Variant]
    BOTH: _ClassVar[Variant]

class OutputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_KIND_UNSPECIFIED: _ClassVar[OutputKind]
    LOGITS: _ClassVar[OutputKind]
    PROBABILITIES: _ClassVar[OutputKind]
    SCORES: _ClassVar[OutputKind]

class FeatureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_KIND_UNSPECIFIED: _ClassVar[FeatureKind]
    ELEMENT: _ClassVar[FeatureKind]
    PIXEL: _ClassVar[FeatureKind]
    PATCH: _ClassVar[FeatureKind]
    EXPLICIT: _ClassVar[FeatureKind]

class BaselineKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BASELINE_KIND_UNSPECIFIED: _ClassVar[BaselineKind]
    ZEROS: _ClassVar[BaselineKind]
    MEAN: _ClassVar[BaselineKind]
    CONSTANT: _ClassVar[BaselineKind]
    CUSTOM: _ClassVar[BaselineKind]
    BLUR: _ClassVar[BaselineKind]
    PAD_TOKEN: _ClassVar[BaselineKind]
    MASK_TOKEN: _ClassVar[BaselineKind]

class ExplainMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPLAIN_MODE_UNSPECIFIED: _ClassVar[ExplainMode]
    EXACT: _ClassVar[ExplainMode]
    BATCHED: _ClassVar[ExplainMode]

class SISStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIS_STATUS_UNSPECIFIED: _ClassVar[SISStatus]
    FOUND: _ClassVar[SISStatus]
    NOT_CONFIDENT: _ClassVar[SISStatus]
    BASELINE_SUFFICIENT: _ClassVar[SISStatus]
    PARTIAL: _ClassVar[SISStatus]

class DivergenceReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIVERGENCE_REASON_UNSPECIFIED: _ClassVar[DivergenceReason]
    TOP1_DIFFERS: _ClassVar[DivergenceReason]
    LOW_IOU: _ClassVar[DivergenceReason]
    DENSE_SIS_INSUFFICIENT_FOR_PRUNED: _ClassVar[DivergenceReason]
    PRUNED_SIS_INSUFFICIENT_FOR_DENSE: _ClassVar[DivergenceReason]
    PRUNED_NOT_CONFIDENT: _ClassVar[DivergenceReason]
    LOW_RANK_CORRELATION: _ClassVar[DivergenceReason]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    HEALTHY: _ClassVar[Verdict]
    DAMAGED: _ClassVar[Verdict]
    INSUFFICIENT_DATA: _ClassVar[Verdict]
DATA_TYPE_UNSPECIFIED: DataType
FLOAT32: DataType
FLOAT64: DataType
FLOAT16: DataType
INT64: DataType
INT32: DataType
INT16: DataType
INT8: DataType
UINT8: DataType
BOOL: DataType
VARIANT_UNSPECIFIED: Variant
DENSE: Variant
PRUNED: Variant
BOTH: Variant
OUTPUT_KIND_UNSPECIFIED: OutputKind
LOGITS: OutputKind
PROBABILITIES: OutputKind
SCORES: OutputKind
FEATURE_KIND_UNSPECIFIED: FeatureKind
ELEMENT: FeatureKind
PIXEL: FeatureKind
PATCH: FeatureKind
EXPLICIT: FeatureKind
BASELINE_KIND_UNSPECIFIED: BaselineKind
ZEROS: BaselineKind
MEAN: BaselineKind
CONSTANT: BaselineKind
CUSTOM: BaselineKind
BLUR: BaselineKind
PAD_TOKEN: BaselineKind
MASK_TOKEN: BaselineKind
EXPLAIN_MODE_UNSPECIFIED: ExplainMode
EXACT: ExplainMode
BATCHED: ExplainMode
SIS_STATUS_UNSPECIFIED: SISStatus
FOUND: SISStatus
NOT_CONFIDENT: SISStatus
BASELINE_SUFFICIENT: SISStatus
PARTIAL: SISStatus
DIVERGENCE_REASON_UNSPECIFIED: DivergenceReason
TOP1_DIFFERS: DivergenceReason
LOW_IOU: DivergenceReason
DENSE_SIS_INSUFFICIENT_FOR_PRUNED: DivergenceReason
PRUNED_SIS_INSUFFICIENT_FOR_DENSE: DivergenceReason
PRUNED_NOT_CONFIDENT: DivergenceReason
LOW_RANK_CORRELATION: DivergenceReason
VERDICT_UNSPECIFIED: Verdict
HEALTHY: Verdict
DAMAGED: Verdict
INSUFFICIENT_DATA: Verdict

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ModelFile(_message.Message):
    __slots__ = ("path", "sha256", "parameter_count", "nonzero_parameter_count", "execution_provider", "infer_name", "ready")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    NONZERO_PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INFER_NAME_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    parameter_count: int
    nonzero_parameter_count: int
    execution_provider: str
    infer_name: str
    ready: bool
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., parameter_count: _Optional[int] = ..., nonzero_parameter_count: _Optional[int] = ..., execution_provider: _Optional[str] = ..., infer_name: _Optional[str] = ..., ready: bool = ...) -> None: ...

class PairInfo(_message.Message):
    __slots__ = ("name", "input_name", "input_shape", "input_dtype", "output_name", "output_kind", "num_outputs", "class_labels", "dense", "pruned", "prune_ratio", "max_batch_size", "explain_defaults", "image", "control", "verdict_reference", "feature_names", "inputs", "text")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_DTYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_KIND_FIELD_NUMBER: _ClassVar[int]
    NUM_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CLASS_LABELS_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    PRUNE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    name: str
    input_name: str
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    input_dtype: DataType
    output_name: str
    output_kind: OutputKind
    num_outputs: int
    class_labels: _containers.RepeatedScalarFieldContainer[str]
    dense: ModelFile
    pruned: ModelFile
    prune_ratio: float
    max_batch_size: int
    explain_defaults: ExplainDefaults
    image: ImageDefaults
    control: ModelFile
    verdict_reference: str
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedCompositeFieldContainer[InputInfo]
    text: TextDefaults
    def __init__(self, name: _Optional[str] = ..., input_name: _Optional[str] = ..., input_shape: _Optional[_Iterable[int]] = ..., input_dtype: _Optional[_Union[DataType, str]] = ..., output_name: _Optional[str] = ..., output_kind: _Optional[_Union[OutputKind, str]] = ..., num_outputs: _Optional[int] = ..., class_labels: _Optional[_Iterable[str]] = ..., dense: _Optional[_Union[ModelFile, _Mapping]] = ..., pruned: _Optional[_Union[ModelFile, _Mapping]] = ..., prune_ratio: _Optional[float] = ..., max_batch_size: _Optional[int] = ..., explain_defaults: _Optional[_Union[ExplainDefaults, _Mapping]] = ..., image: _Optional[_Union[ImageDefaults, _Mapping]] = ..., control: _Optional[_Union[ModelFile, _Mapping]] = ..., verdict_reference: _Optional[str] = ..., feature_names: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[_Union[InputInfo, _Mapping]]] = ..., text: _Optional[_Union[TextDefaults, _Mapping]] = ...) -> None: ...

class InputInfo(_message.Message):
    __slots__ = ("name", "shape", "dtype", "role", "derive")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DERIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DataType
    role: str
    derive: str
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DataType, str]] = ..., role: _Optional[str] = ..., derive: _Optional[str] = ...) -> None: ...

class TextDefaults(_message.Message):
    __slots__ = ("pad_token_id", "mask_token_id", "vocab_size", "tokenizer_json")
    PAD_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_JSON_FIELD_NUMBER: _ClassVar[int]
    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    tokenizer_json: str
    def __init__(self, pad_token_id: _Optional[int] = ..., mask_token_id: _Optional[int] = ..., vocab_size: _Optional[int] = ..., tokenizer_json: _Optional[str] = ...) -> None: ...

class ImageDefaults(_message.Message):
    __slots__ = ("scale", "invert")
    SCALE_FIELD_NUMBER: _ClassVar[int]
    INVERT_FIELD_NUMBER: _ClassVar[int]
    scale: float
    invert: bool
    def __init__(self, scale: _Optional[float] = ..., invert: bool = ...) -> None: ...

class ExplainDefaults(_message.Message):
    __slots__ = ("threshold", "threshold_relative", "features", "patch_height", "patch_width", "baseline", "max_evaluations", "num_features")
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PATCH_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PATCH_WIDTH_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    MAX_EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    threshold: float
    threshold_relative: bool
    features: FeatureKind
    patch_height: int
    patch_width: int
    baseline: BaselineKind
    max_evaluations: int
    num_features: int
    def __init__(self, threshold: _Optional[float] = ..., threshold_relative: bool = ..., features: _Optional[_Union[FeatureKind, str]] = ..., patch_height: _Optional[int] = ..., patch_width: _Optional[int] = ..., baseline: _Optional[_Union[BaselineKind, str]] = ..., max_evaluations: _Optional[int] = ..., num_features: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("pairs",)
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[PairInfo]
    def __init__(self, pairs: _Optional[_Iterable[_Union[PairInfo, _Mapping]]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("pair", "inputs", "variant", "named_inputs")
    class NamedInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    PAIR_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    NAMED_INPUTS_FIELD_NUMBER: _ClassVar[int]
    pair: str
    inputs: Tensor
    variant: Variant
    named_inputs: _containers.MessageMap[str, Tensor]
    def __init__(self, pair: _Optional[str] = ..., inputs: _Optional[_Union[Tensor, _Mapping]] = ..., variant: _Optional[_Union[Variant, str]] = ..., named_inputs: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class VariantPrediction(_message.Message):
    __slots__ = ("probabilities", "top1", "top1_probability")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    TOP1_FIELD_NUMBER: _ClassVar[int]
    TOP1_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    probabilities: Tensor
    top1: _containers.RepeatedScalarFieldContainer[int]
    top1_probability: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, probabilities: _Optional[_Union[Tensor, _Mapping]] = ..., top1: _Optional[_Iterable[int]] = ..., top1_probability: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("pair", "dense", "pruned", "top1_agree", "confidence_gap", "request_id")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    TOP1_AGREE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_GAP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pair: str
    dense: VariantPrediction
    pruned: VariantPrediction
    top1_agree: _containers.RepeatedScalarFieldContainer[bool]
    confidence_gap: _containers.RepeatedScalarFieldContainer[float]
    request_id: str
    def __init__(self, pair: _Optional[str] = ..., dense: _Optional[_Union[VariantPrediction, _Mapping]] = ..., pruned: _Optional[_Union[VariantPrediction, _Mapping]] = ..., top1_agree: _Optional[_Iterable[bool]] = ..., confidence_gap: _Optional[_Iterable[float]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("pair", "input", "target", "threshold_absolute", "threshold_relative", "features", "patch_height", "patch_width", "group_map", "baseline", "baseline_constant", "baseline_tensor", "max_sis", "variants", "mode", "batch_k", "max_evaluations", "return_backselect", "allow_partial", "named_inputs")
    class NamedInputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Tensor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...
    PAIR_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_ABSOLUTE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_RELATIVE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PATCH_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PATCH_WIDTH_FIELD_NUMBER: _ClassVar[int]
    GROUP_MAP_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_CONSTANT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_TENSOR_FIELD_NUMBER: _ClassVar[int]
    MAX_SIS_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_K_FIELD_NUMBER: _ClassVar[int]
    MAX_EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    RETURN_BACKSELECT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    NAMED_INPUTS_FIELD_NUMBER: _ClassVar[int]
    pair: str
    input: Tensor
    target: int
    threshold_absolute: float
    threshold_relative: float
    features: FeatureKind
    patch_height: int
    patch_width: int
    group_map: Tensor
    baseline: BaselineKind
    baseline_constant: float
    baseline_tensor: Tensor
    max_sis: int
    variants: Variant
    mode: ExplainMode
    batch_k: int
    max_evaluations: int
    return_backselect: bool
    allow_partial: bool
    named_inputs: _containers.MessageMap[str, Tensor]
    def __init__(self, pair: _Optional[str] = ..., input: _Optional[_Union[Tensor, _Mapping]] = ..., target: _Optional[int] = ..., threshold_absolute: _Optional[float] = ..., threshold_relative: _Optional[float] = ..., features: _Optional[_Union[FeatureKind, str]] = ..., patch_height: _Optional[int] = ..., patch_width: _Optional[int] = ..., group_map: _Optional[_Union[Tensor, _Mapping]] = ..., baseline: _Optional[_Union[BaselineKind, str]] = ..., baseline_constant: _Optional[float] = ..., baseline_tensor: _Optional[_Union[Tensor, _Mapping]] = ..., max_sis: _Optional[int] = ..., variants: _Optional[_Union[Variant, str]] = ..., mode: _Optional[_Union[ExplainMode, str]] = ..., batch_k: _Optional[int] = ..., max_evaluations: _Optional[int] = ..., return_backselect: bool = ..., allow_partial: bool = ..., named_inputs: _Optional[_Mapping[str, Tensor]] = ...) -> None: ...

class SubsetExplanation(_message.Message):
    __slots__ = ("features", "score", "mask")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[int]
    score: float
    mask: Tensor
    def __init__(self, features: _Optional[_Iterable[int]] = ..., score: _Optional[float] = ..., mask: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class BackSelect(_message.Message):
    __slots__ = ("order", "scores")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    order: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, order: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class VariantExplanation(_message.Message):
    __slots__ = ("status", "sis", "confidence", "top1", "baseline_score", "evaluations", "seconds", "backselect")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TOP1_FIELD_NUMBER: _ClassVar[int]
    BASELINE_SCORE_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKSELECT_FIELD_NUMBER: _ClassVar[int]
    status: SISStatus
    sis: _containers.RepeatedCompositeFieldContainer[SubsetExplanation]
    confidence: float
    top1: int
    baseline_score: float
    evaluations: int
    seconds: float
    backselect: _containers.RepeatedCompositeFieldContainer[BackSelect]
    def __init__(self, status: _Optional[_Union[SISStatus, str]] = ..., sis: _Optional[_Iterable[_Union[SubsetExplanation, _Mapping]]] = ..., confidence: _Optional[float] = ..., top1: _Optional[int] = ..., baseline_score: _Optional[float] = ..., evaluations: _Optional[int] = ..., seconds: _Optional[float] = ..., backselect: _Optional[_Iterable[_Union[BackSelect, _Mapping]]] = ...) -> None: ...

class Agreement(_message.Message):
    __slots__ = ("top1_agree", "confidence_gap", "iou_first", "iou_union", "dense_sis_sufficient_for_pruned", "pruned_sis_sufficient_for_dense", "dense_sis_score_on_pruned", "pruned_sis_score_on_dense", "rank_correlation", "dense_sis_size", "pruned_sis_size", "divergent", "reasons")
    TOP1_AGREE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_GAP_FIELD_NUMBER: _ClassVar[int]
    IOU_FIRST_FIELD_NUMBER: _ClassVar[int]
    IOU_UNION_FIELD_NUMBER: _ClassVar[int]
    DENSE_SIS_SUFFICIENT_FOR_PRUNED_FIELD_NUMBER: _ClassVar[int]
    PRUNED_SIS_SUFFICIENT_FOR_DENSE_FIELD_NUMBER: _ClassVar[int]
    DENSE_SIS_SCORE_ON_PRUNED_FIELD_NUMBER: _ClassVar[int]
    PRUNED_SIS_SCORE_ON_DENSE_FIELD_NUMBER: _ClassVar[int]
    RANK_CORRELATION_FIELD_NUMBER: _ClassVar[int]
    DENSE_SIS_SIZE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_SIS_SIZE_FIELD_NUMBER: _ClassVar[int]
    DIVERGENT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    top1_agree: bool
    confidence_gap: float
    iou_first: float
    iou_union: float
    dense_sis_sufficient_for_pruned: bool
    pruned_sis_sufficient_for_dense: bool
    dense_sis_score_on_pruned: float
    pruned_sis_score_on_dense: float
    rank_correlation: float
    dense_sis_size: int
    pruned_sis_size: int
    divergent: bool
    reasons: _containers.RepeatedScalarFieldContainer[DivergenceReason]
    def __init__(self, top1_agree: bool = ..., confidence_gap: _Optional[float] = ..., iou_first: _Optional[float] = ..., iou_union: _Optional[float] = ..., dense_sis_sufficient_for_pruned: bool = ..., pruned_sis_sufficient_for_dense: bool = ..., dense_sis_score_on_pruned: _Optional[float] = ..., pruned_sis_score_on_dense: _Optional[float] = ..., rank_correlation: _Optional[float] = ..., dense_sis_size: _Optional[int] = ..., pruned_sis_size: _Optional[int] = ..., divergent: bool = ..., reasons: _Optional[_Iterable[_Union[DivergenceReason, str]]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("pair", "target", "threshold", "num_features", "dense", "pruned", "agreement", "cached", "request_id", "group_map")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_MAP_FIELD_NUMBER: _ClassVar[int]
    pair: str
    target: int
    threshold: float
    num_features: int
    dense: VariantExplanation
    pruned: VariantExplanation
    agreement: Agreement
    cached: bool
    request_id: str
    group_map: Tensor
    def __init__(self, pair: _Optional[str] = ..., target: _Optional[int] = ..., threshold: _Optional[float] = ..., num_features: _Optional[int] = ..., dense: _Optional[_Union[VariantExplanation, _Mapping]] = ..., pruned: _Optional[_Union[VariantExplanation, _Mapping]] = ..., agreement: _Optional[_Union[Agreement, _Mapping]] = ..., cached: bool = ..., request_id: _Optional[str] = ..., group_map: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class ExplainProgress(_message.Message):
    __slots__ = ("variant", "round", "step", "features_left", "evaluations")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FEATURES_LEFT_FIELD_NUMBER: _ClassVar[int]
    EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    variant: Variant
    round: int
    step: int
    features_left: int
    evaluations: int
    def __init__(self, variant: _Optional[_Union[Variant, str]] = ..., round: _Optional[int] = ..., step: _Optional[int] = ..., features_left: _Optional[int] = ..., evaluations: _Optional[int] = ...) -> None: ...

class ExplainEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ExplainProgress
    result: ExplainResponse
    def __init__(self, progress: _Optional[_Union[ExplainProgress, _Mapping]] = ..., result: _Optional[_Union[ExplainResponse, _Mapping]] = ...) -> None: ...

class PairHealthRequest(_message.Message):
    __slots__ = ("pair",)
    PAIR_FIELD_NUMBER: _ClassVar[int]
    pair: str
    def __init__(self, pair: _Optional[str] = ...) -> None: ...

class MeasureExcess(_message.Message):
    __slots__ = ("name", "source", "deciding", "margin", "samples", "pruned_mean", "reference_mean", "reference", "estimate", "lower", "upper", "samples_needed", "damaged")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DECIDING_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PRUNED_MEAN_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_MEAN_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_NEEDED_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    deciding: bool
    margin: float
    samples: int
    pruned_mean: float
    reference_mean: float
    reference: str
    estimate: float
    lower: float
    upper: float
    samples_needed: int
    damaged: bool
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., deciding: bool = ..., margin: _Optional[float] = ..., samples: _Optional[int] = ..., pruned_mean: _Optional[float] = ..., reference_mean: _Optional[float] = ..., reference: _Optional[str] = ..., estimate: _Optional[float] = ..., lower: _Optional[float] = ..., upper: _Optional[float] = ..., samples_needed: _Optional[int] = ..., damaged: bool = ...) -> None: ...

class PairHealthResponse(_message.Message):
    __slots__ = ("pair", "verdict", "reference", "samples", "samples_needed", "min_samples", "confidence", "window", "measures", "request_id")
    PAIR_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_NEEDED_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MEASURES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pair: str
    verdict: Verdict
    reference: str
    samples: int
    samples_needed: int
    min_samples: int
    confidence: float
    window: int
    measures: _containers.RepeatedCompositeFieldContainer[MeasureExcess]
    request_id: str
    def __init__(self, pair: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., reference: _Optional[str] = ..., samples: _Optional[int] = ..., samples_needed: _Optional[int] = ..., min_samples: _Optional[int] = ..., confidence: _Optional[float] = ..., window: _Optional[int] = ..., measures: _Optional[_Iterable[_Union[MeasureExcess, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...
