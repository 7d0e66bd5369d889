-- The dimensions of a GenAI call, as WITH-clause items over one otel_traces span: llm_calls selects
-- them among its columns, and llm_scores copies them onto a score recorded on the call's span.
-- Kept apart so llm_scores' view analyses these few expressions, not all of llm_calls' columns.
-- OpenInference keeps the requested model (and the stream flag) only in its invocation parameters,
-- and what the app passed with using_metadata() in one JSON attribute: both are parsed only on the
-- spans that carry them (small objects; short-circuit evaluation skips every other span).
    SpanAttributes['llm.invocation_parameters'] AS oi_invocation,
    SpanAttributes['metadata'] AS oi_metadata,
    nullIf(ResourceAttributes['service.version'], '') AS service_version,
    coalesce(nullIf(ResourceAttributes['deployment.environment.name'], ''), nullIf(ResourceAttributes['deployment.environment'], '')) AS environment,
    nullIf(SpanAttributes['driftline.route'], '') AS route,
    nullIf(SpanAttributes['driftline.tenant'], '') AS tenant,
    lower(coalesce(nullIf(SpanAttributes['gen_ai.provider.name'], ''), nullIf(SpanAttributes['gen_ai.system'], ''),
                   nullIf(SpanAttributes['llm.provider'], ''), nullIf(SpanAttributes['llm.system'], ''))) AS provider,
    coalesce(nullIf(SpanAttributes['gen_ai.request.model'], ''),
             if(oi_invocation != '', nullIf(JSONExtractString(oi_invocation, 'model'), ''), NULL),
             nullIf(SpanAttributes['llm.model_name'], ''), nullIf(SpanAttributes['embedding.model_name'], '')) AS request_model,
    coalesce(nullIf(SpanAttributes['gen_ai.response.model'], ''), nullIf(SpanAttributes['llm.model_name'], ''),
             nullIf(SpanAttributes['embedding.model_name'], '')) AS response_model,
    coalesce(nullIf(SpanAttributes['openai.response.system_fingerprint'], ''),
             nullIf(SpanAttributes['gen_ai.openai.response.system_fingerprint'], '')) AS system_fingerprint,
    nullIf(SpanAttributes['gen_ai.prompt.name'], '') AS prompt_name,
    coalesce(nullIf(SpanAttributes['gen_ai.prompt.version'], ''), nullIf(SpanAttributes['llm.prompt_template.version'], '')) AS prompt_version,
    coalesce(nullIf(SpanAttributes['driftline.retrieval.index.name'], ''), nullIf(SpanAttributes['gen_ai.data_source.id'], ''),
             if(oi_metadata != '', nullIf(JSONExtractString(oi_metadata, 'driftline.retrieval.index.name'), ''), NULL)) AS index_name,
    coalesce(nullIf(SpanAttributes['driftline.retrieval.index.version'], ''),
             if(oi_metadata != '', nullIf(JSONExtractString(oi_metadata, 'driftline.retrieval.index.version'), ''), NULL)) AS index_version,
    coalesce(toFloat64OrNull(SpanAttributes['driftline.input.confidence.mean']),
             if(oi_metadata != '', JSONExtract(oi_metadata, 'driftline.input.confidence.mean', 'Nullable(Float64)'), NULL)) AS confidence_mean
