"""PairHealth: the core's :class:`VerdictReport` as a ``sisguard.v1.PairHealthResponse``."""

from __future__ import annotations

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.server.signal.verdict import VerdictReport

VERDICT_CODES = {"healthy": pb.HEALTHY, "damaged": pb.DAMAGED, "insufficient_data": pb.INSUFFICIENT_DATA}


def response(report: VerdictReport, request_id: str) -> pb.PairHealthResponse:
    return pb.PairHealthResponse(
        pair=report.pair,
        verdict=VERDICT_CODES[report.verdict],
        reference=report.reference,
        samples=report.samples,
        samples_needed=report.samples_needed,
        min_samples=report.min_samples,
        confidence=report.confidence,
        window=report.window,
        measures=[
            pb.MeasureExcess(
                name=e.name,
                source=e.source,
                deciding=e.deciding,
                margin=e.margin,
                samples=e.samples,
                pruned_mean=e.pruned_mean,
                reference_mean=e.reference_mean,
                reference=e.reference,
                estimate=e.estimate,
                lower=e.lower,
                upper=e.upper,
                samples_needed=e.samples_needed,
                damaged=e.damaged,
            )
            for e in report.measures
        ],
        request_id=request_id,
    )
