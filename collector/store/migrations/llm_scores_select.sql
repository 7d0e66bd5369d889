-- One row per gen_ai.evaluation.result event. An evaluation recorded after the judged span ended
-- rides on a `driftline.evaluation` span linked to it; the link names the judged trace and span.
-- When the event rides on the judged GenAI span itself, the row also carries that call's time
-- (`call_time`) and dimensions, computed by llm_calls' own SQL, so quality queries need no join:
-- otherwise call_time is NULL (the other columns then say nothing about the call) and the call is
-- looked up in llm_calls. Every span passes through this view: it keeps only those with an
-- evaluation event before computing anything else.
SELECT
    ev.2 AS time,
    judged_trace_id AS trace_id,
    judged_span_id AS span_id,
    service,
    ev.3['gen_ai.evaluation.name'] AS evaluation,
    toFloat64OrNull(ev.3['gen_ai.evaluation.score.value']) AS score,
    nullIf(ev.3['gen_ai.evaluation.score.label'], '') AS label,
    nullIf(ev.3['gen_ai.evaluation.explanation'], '') AS explanation,
    source_span_id,
    call_time, environment, route, tenant, service_version, provider, request_model, response_model, system_fingerprint,
    prompt_name, prompt_version, index_name, index_version, confidence_mean
FROM (
    WITH {include: llm_calls_dimensions}
    SELECT
        ServiceName AS service,
        environment, route, tenant, service_version, provider, request_model, response_model, system_fingerprint,
        prompt_name, prompt_version, index_name, index_version, confidence_mean,
        SpanId AS source_span_id,
        if(SpanName = 'driftline.evaluation' AND length(Links.TraceId) > 0, Links.TraceId[1], TraceId) AS judged_trace_id,
        if(SpanName = 'driftline.evaluation' AND length(Links.SpanId) > 0, Links.SpanId[1], SpanId) AS judged_span_id,
        if({include: llm_calls_spans}, Timestamp, NULL) AS call_time,
        arrayFilter(e -> e.1 = 'gen_ai.evaluation.result', arrayZip(Events.Name, Events.Timestamp, Events.Attributes)) AS evaluations
    FROM otel_traces
    WHERE has(Events.Name, 'gen_ai.evaluation.result')
)
ARRAY JOIN evaluations AS ev
