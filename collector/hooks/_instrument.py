"""`instrument()`: join (or set up) the app's TracerProvider and send GenAI spans somewhere.

Join, don't replace: when the app already has an SDK TracerProvider, driftline adds its
processors to it; only when none is set does it create one and make it global. Spans go either
over OTLP to a receiver or collector (`endpoint=`), or straight into the store (`store=`), batched
by the SDK's BatchSpanProcessor and flushed at exit.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from driftline.collector import _names as n
from driftline.collector._config import DRIFTLINE_EXPORT_BATCH, env_int
from driftline.collector._errors import ConfigError
from driftline.collector._redaction import RedactionPolicy

from ._context import ReleaseContextProcessor

__all__ = ["Instrumentation", "instrument"]

_log = logging.getLogger("driftline")


@dataclass
class Instrumentation:
    """What `instrument()` set up; `shutdown()` flushes and detaches driftline's exporter."""

    tracer_provider: TracerProvider
    processors: list[SpanProcessor] = field(default_factory=list)
    created_provider: bool = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued so far."""
        return all(p.force_flush(timeout_millis) for p in self.processors)

    def shutdown(self) -> None:
        """Flush and stop driftline's processors (the provider's own shutdown also does this)."""
        for processor in self.processors:
            processor.shutdown()


def _store_exporter(store: str | None, redaction: RedactionPolicy | str | Path | bool | None) -> SpanExporter:
    from driftline.collector.store._migrate import migrate
    from driftline.collector.store._prices import refresh_prices
    from driftline.collector.store._store import connect

    from ._exporter import StoreSpanExporter

    opened = connect(store)
    migrate(opened)
    if opened.capabilities.embedded:  # the app owns it, as serve owns its own: `db migrate` may never run on it
        refresh_prices(opened)
    return StoreSpanExporter(opened, redaction=redaction)


def _otlp_exporter(endpoint: str, protocol: str, headers: Mapping[str, str] | None) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"), headers=dict(headers or {}))
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=url, headers=dict(headers or {}))
    raise ConfigError(f"protocol must be 'http/protobuf' or 'grpc', not {protocol!r}")


def _provider(service_name: str | None, service_version: str | None, environment: str | None) -> tuple[TracerProvider, bool]:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if service_name and current.resource.attributes.get("service.name") != service_name:
            _log.warning("driftline: joining the existing TracerProvider; its service.name %r is kept",
                         current.resource.attributes.get("service.name"))  # fmt: skip
        return current, False
    attrs = {"service.name": service_name or "unknown_service"}
    if service_version:
        attrs[n.SERVICE_VERSION] = service_version
    if environment:
        attrs[n.DEPLOYMENT_ENVIRONMENT] = environment
    provider = TracerProvider(resource=Resource.create(attrs))
    trace.set_tracer_provider(provider)
    return provider, True


def instrument(
    service_name: str | None = None,
    *,
    store: str | None = None,
    endpoint: str | None = None,
    protocol: str = "http/protobuf",
    headers: Mapping[str, str] | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    exporter: SpanExporter | None = None,
    max_export_batch_size: int | None = None,
    redaction: RedactionPolicy | str | Path | bool | None = None,
) -> Instrumentation:
    """Set up driftline for this process.

    Give `endpoint` (OTLP receiver or collector, e.g. http://127.0.0.1:4318) or `store`
    (chdb:///dir or http://…:8123; default DRIFTLINE_STORE, then ./.driftline), or your own
    `exporter`. Returns a handle whose `shutdown()` flushes. A store gets the schema it needs, and an
    embedded one the price table calls without a reported cost are priced from (`prices` extra).

    `redaction` (with `store`): the policy masking secrets and personal data before the insert, a
    `RedactionPolicy` or a TOML file; False for none; default $DRIFTLINE_REDACTION, else the
    built-in detectors over content. Over OTLP, the receiver (`driftline serve`) applies its own.
    """
    if sum(x is not None for x in (store, endpoint, exporter)) > 1:
        raise ConfigError("give one of store=, endpoint= or exporter=, not several")
    provider, created = _provider(service_name, service_version, environment)
    if exporter is None:
        exporter = _otlp_exporter(endpoint, protocol, headers) if endpoint else _store_exporter(store, redaction)
    batch = max_export_batch_size or env_int(DRIFTLINE_EXPORT_BATCH, 2048)
    processors: list[SpanProcessor] = [
        ReleaseContextProcessor(),
        BatchSpanProcessor(exporter, max_export_batch_size=batch, max_queue_size=max(batch * 4, 8192)),
    ]
    for processor in processors:
        provider.add_span_processor(processor)
    handle = Instrumentation(provider, processors, created)
    # Flush at exit before the embedded engine's own exit hooks close it: atexit runs last
    # registered first, and the store (opened above) registered its hooks before this line.
    atexit.register(handle.shutdown)
    return handle
