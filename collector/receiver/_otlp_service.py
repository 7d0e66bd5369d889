"""What one OTLP export call does, whatever the transport: parse, count, redact, spool, answer.

The HTTP and gRPC receivers differ only in how they read a body and map the outcome to a
status (see the table in each); the decisions live here once.

Metrics are not stored: driftline has no metric tables. They are refused with an OTLP partial
success (every data point counted as rejected, with a message saying why), never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ._ingest import Ingester, Signal
from ._otlp_decode import count_items, parse_request

__all__ = ["ENDPOINTS", "METRICS_REFUSED", "Endpoint", "export"]

METRICS_REFUSED: Final = (
    "driftline serve does not store metrics (it keeps traces and logs); "
    "send metrics to a Prometheus- or OTLP-metrics-capable backend instead"
)


@dataclass(frozen=True)
class Endpoint:
    """One OTLP signal: its request/response types and where the rejected count goes."""

    name: str
    request: type[Any]
    response: type[Any]
    rejected_field: str
    signal: Signal | None


ENDPOINTS: Final = {
    "traces": Endpoint("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans", Signal.TRACES),
    "logs": Endpoint("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records", Signal.LOGS),
    "metrics": Endpoint("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse, "rejected_data_points", None),
}


def export(ingester: Ingester, endpoint: Endpoint, body: bytes, *, json_body: bool) -> Message:
    """Handle one export request body; raises BadPayload, Overloaded or Unavailable."""
    message, payload = parse_request(body, endpoint.request, json_body=json_body)
    items = count_items(message)
    response = endpoint.response()
    if endpoint.signal is None:
        if items:
            ingester.metrics.reject("metrics_not_stored", endpoint.name, items)
            setattr(response.partial_success, endpoint.rejected_field, items)
            response.partial_success.error_message = METRICS_REFUSED
        return response
    if items:
        if ingester.redaction is not None:  # before the spool: a masked value never reaches disk
            payload = ingester.redaction.payload(message, payload)
        ingester.accept(endpoint.signal, payload, items)
    return response
