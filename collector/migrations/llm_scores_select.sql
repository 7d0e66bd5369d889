-- One row per gen_ai.evaluation.result event. An evaluation recorded after the judged span ended
-- rides on a `driftline.evaluation` span linked to it; the link names the judged trace and span.
SELECT
    Events.Timestamp AS time,
    if(SpanName = 'driftline.evaluation' AND length(Links.TraceId) > 0, Links.TraceId[1], TraceId) AS trace_id,
    if(SpanName = 'driftline.evaluation' AND length(Links.SpanId) > 0, Links.SpanId[1], SpanId) AS span_id,
    ServiceName AS service,
    Events.Attributes['gen_ai.evaluation.name'] AS evaluation,
    toFloat64OrNull(Events.Attributes['gen_ai.evaluation.score.value']) AS score,
    nullIf(Events.Attributes['gen_ai.evaluation.score.label'], '') AS label,
    nullIf(Events.Attributes['gen_ai.evaluation.explanation'], '') AS explanation,
    SpanId AS source_span_id
FROM otel_traces
ARRAY JOIN Events
WHERE Events.Name = 'gen_ai.evaluation.result'
