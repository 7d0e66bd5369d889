-- One row per gen_ai.evaluation.result log event (OTLP logs), judged span from the record's context.
SELECT
    Timestamp AS time,
    TraceId AS trace_id,
    SpanId AS span_id,
    ServiceName AS service,
    LogAttributes['gen_ai.evaluation.name'] AS evaluation,
    toFloat64OrNull(LogAttributes['gen_ai.evaluation.score.value']) AS score,
    nullIf(LogAttributes['gen_ai.evaluation.score.label'], '') AS label,
    nullIf(LogAttributes['gen_ai.evaluation.explanation'], '') AS explanation,
    SpanId AS source_span_id
FROM otel_logs
WHERE LogAttributes['event.name'] = 'gen_ai.evaluation.result'
