"""sisguard.wire: the wire codec that the client and the server share.

Everything both sides need to read and write ``sisguard.v1`` messages the same way, and nothing
of either side: numpy, protobuf and the generated stubs (plus the engine's result type for the
agreement block), no grpc.

* :mod:`.dtypes` — wire ``DataType`` codes and Open Inference Protocol names to numpy and back.
* :mod:`.tensors` — ``Tensor`` messages to numpy and back, with shape, limit and byte-length checks.
* :mod:`.vocab` — the enum vocabularies (variants, output kinds, features, baselines, modes,
  statuses, reasons, verdicts): one name per concept, both ways.
* :mod:`.agreement` — the ``Agreement`` block to and from :class:`sisguard.sis.AgreementResult`.
* :mod:`.fields` — a message read into a dataclass that mirrors its fields by name.
* :mod:`.errors` — :class:`WireError` (a message that does not fit the format) and :class:`TooLarge`.
"""

from .agreement import AGREEMENT_FIELDS, decode_agreement, encode_agreement
from .dtypes import DTYPES, OIP_DTYPES, code_of, dtype_of, oip_dtype, oip_name
from .errors import TooLarge, WireError
from .fields import decode_fields
from .tensors import (
    MAX_DIMS,
    check_shape,
    decode,
    describe_shape,
    from_tensor,
    from_values,
    native,
    to_tensor,
)
from .vocab import (
    BASELINES,
    FEATURES,
    MODES,
    OUTPUT_KINDS,
    PROGRESS_VARIANTS,
    REASONS,
    STATUSES,
    VARIANTS,
    VERDICTS,
    Vocabulary,
)

__all__ = [
    "AGREEMENT_FIELDS",
    "BASELINES",
    "DTYPES",
    "FEATURES",
    "MAX_DIMS",
    "MODES",
    "OIP_DTYPES",
    "OUTPUT_KINDS",
    "PROGRESS_VARIANTS",
    "REASONS",
    "STATUSES",
    "VARIANTS",
    "VERDICTS",
    "TooLarge",
    "Vocabulary",
    "WireError",
    "check_shape",
    "code_of",
    "decode",
    "decode_agreement",
    "decode_fields",
    "describe_shape",
    "dtype_of",
    "encode_agreement",
    "from_tensor",
    "from_values",
    "native",
    "oip_dtype",
    "oip_name",
    "to_tensor",
]
