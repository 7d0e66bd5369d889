-- Explicit change annotations (driftline annotate, the Python API, or any app emitting the span).
SELECT
    Timestamp AS time,
    SpanAttributes['driftline.change.kind'] AS kind,
    SpanAttributes['driftline.change.target'] AS target,
    nullIf(SpanAttributes['driftline.change.version'], '') AS version,
    SpanAttributes['driftline.change.description'] AS description,
    nullIf(SpanAttributes['driftline.change.author'], '') AS author,
    ServiceName AS service,
    coalesce(nullIf(ResourceAttributes['deployment.environment.name'], ''), nullIf(ResourceAttributes['deployment.environment'], '')) AS environment,
    TraceId AS trace_id,
    SpanId AS span_id
FROM otel_traces
WHERE SpanName = 'driftline.change'
