-- The typed columns of an llm_calls row, computed from one otel_traces span (no FROM: the
-- including query picks the spans). llm_scores, whose rows carry the judged call's dimensions, reads
-- only those (llm_calls_dimensions.sql, included here too), so both normalise them the same way.
WITH
    {include: llm_calls_dimensions},
    coalesce(toUInt64OrNull(SpanAttributes['gen_ai.usage.input_tokens']), toUInt64OrNull(SpanAttributes['gen_ai.usage.prompt_tokens']),
             toUInt64OrNull(SpanAttributes['llm.token_count.prompt'])) AS input_tokens_raw,
    coalesce(toUInt64OrNull(SpanAttributes['gen_ai.usage.output_tokens']), toUInt64OrNull(SpanAttributes['gen_ai.usage.completion_tokens']),
             toUInt64OrNull(SpanAttributes['llm.token_count.completion'])) AS output_tokens_raw,
    coalesce(toUInt64OrNull(SpanAttributes['llm.usage.total_tokens']), toUInt64OrNull(SpanAttributes['llm.token_count.total'])) AS total_tokens_raw,
    coalesce(toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']), toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read_input_tokens']),
             toUInt64OrNull(SpanAttributes['llm.token_count.prompt_details.cache_read'])) AS cached_tokens_any,
    coalesce(toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write.input_tokens']),
             toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_creation.input_tokens']),
             toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_creation_input_tokens']),
             toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write_input_tokens']),
             toUInt64OrNull(SpanAttributes['llm.token_count.prompt_details.cache_write'])) AS cache_write_any,
    if(startsWith(SpanAttributes['gen_ai.response.finish_reasons'], '['),
       JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)')[1],
       SpanAttributes['gen_ai.response.finish_reasons']) AS finish_reason_otel,
    coalesce(nullIf(finish_reason_otel, ''), nullIf(SpanAttributes['llm.finish_reason'], ''),
             nullIf(SpanAttributes['gen_ai.completion.0.finish_reason'], '')) AS finish_reason_any,
    multiIf(SpanAttributes['gen_ai.request.stream'] != '', SpanAttributes['gen_ai.request.stream'] = 'true',
            SpanAttributes['gen_ai.is_streaming'] != '', SpanAttributes['gen_ai.is_streaming'] = 'true',
            SpanAttributes['llm.is_streaming'] != '', SpanAttributes['llm.is_streaming'] = 'true',
            SpanAttributes['gen_ai.request.is_stream'] != '', SpanAttributes['gen_ai.request.is_stream'] = 'true',
            oi_invocation != '', ifNull(JSONExtract(oi_invocation, 'stream', 'Nullable(Bool)'), false),
            NULL) AS stream_any,
    arrayFirstIndex(n -> n = 'exception', Events.Name) AS exception_event,
    if(exception_event > 0, Events.Attributes[exception_event], map()) AS exception_attributes,
    coalesce(nullIf(replaceRegexpOne(SpanAttributes['error.type'], '^<class \'(.*)\'>$', '\\1'), ''),
             nullIf(exception_attributes['exception.type'], '')) AS error_type_clean,
    -- The provider's HTTP status, or the one its SDK's exception names ("Error code: 429 - ...").
    coalesce(toUInt16OrNull(SpanAttributes['http.response.status_code']), toUInt16OrNull(SpanAttributes['http.status_code']),
             if(StatusCode = 'Error', toUInt16OrNull(extract(if(exception_event > 0, exception_attributes['exception.message'], StatusMessage),
                                                             'Error code: (\\d{3})')), NULL)) AS http_status_any,
    -- The first streamed chunk: OpenInference marks it, OpenLLMetry timestamps every chunk.
    arrayFirstIndex(n -> n IN ('First Token Stream Event', 'gen_ai.content.completion.chunk'), Events.Name) AS first_chunk_event,
    toFloat64OrNull(SpanAttributes['gen_ai.usage.cost.amount']) AS cost_amount_otel,
    nullIf(SpanAttributes['gen_ai.usage.cost.currency'], '') AS cost_currency_otel,
    -- OpenLIT reports 0 when its price list does not know the model: that is no price, not a free call.
    nullIf(toFloat64OrNull(SpanAttributes['gen_ai.usage.cost']), 0) AS cost_openlit,
    coalesce(toFloat64OrNull(SpanAttributes['driftline.cost']), if(ifNull(cost_currency_otel, 'USD') = 'USD', cost_amount_otel, NULL),
             cost_openlit) AS cost_reported,
    toUInt64OrNull(SpanAttributes['driftline.stream.tokens_after_cancel']) AS tokens_after_cancel_any,
    -- Rates from the store's price table (collector/store/_prices.py), of the answering model, else
    -- of the requested one; all zero when it knows neither. Looked up for every call: only a call with
    -- tokens and no cost, or with tokens billed after a cancel, is priced, but each column below tests
    -- that itself, so a guard here (there was one until migration 0008) changed no value and only
    -- added to the expression re-analysed at each use of `rates` (see below).
    if(joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(response_model, '')).5 != '',
       joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(response_model, '')),
       joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(request_model, ''))) AS rates,
    -- The rates and the cost computed from them, as one value. A WITH alias is not computed once and
    -- reused: the engine puts its expression at every use and analyses it anew there, and a materialized
    -- view analyses its SELECT on every insert. `arrayMap(r -> f(r), [rates])[1]` is f(rates) with
    -- `rates` (three joinGet) written once, so it is analysed once per column however often f reads it.
    -- The columns below read `priced` and `cost_source_any` the same way.
    -- Input tokens include the cached ones (as providers and genai-prices count them).
    arrayMap(r -> (r, if(r.5 = '' OR cost_reported IS NOT NULL OR (input_tokens_raw IS NULL AND output_tokens_raw IS NULL), NULL,
       (ifNull(input_tokens_raw, 0) - least(ifNull(input_tokens_raw, 0), ifNull(cached_tokens_any, 0) + ifNull(cache_write_any, 0))) * r.1
       + ifNull(cached_tokens_any, 0) * r.2 + ifNull(cache_write_any, 0) * r.3 + ifNull(output_tokens_raw, 0) * r.4)), [rates])[1] AS priced,
    arrayMap(p -> multiIf(SpanAttributes['driftline.cost'] != '', 'app',
            cost_amount_otel IS NOT NULL, coalesce(nullIf(SpanAttributes['gen_ai.usage.cost.source'], ''), 'reported'),
            cost_openlit IS NOT NULL, 'openlit',
            p.2 IS NOT NULL, p.1.5, NULL), [priced])[1] AS cost_source_any
SELECT
    Timestamp AS time,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    ServiceName AS service,
    SpanName AS span_name,
    service_version,
    environment,
    route,
    tenant,
    coalesce(nullIf(SpanAttributes['gen_ai.operation.name'], ''),
             nullIf(SpanAttributes['llm.request.type'], ''),
             multiIf(SpanAttributes['openinference.span.kind'] = 'LLM', 'chat',
                     SpanAttributes['openinference.span.kind'] = 'EMBEDDING', 'embeddings', NULL)) AS operation,
    provider,
    request_model,
    response_model,
    system_fingerprint,
    nullIf(SpanAttributes['gen_ai.response.id'], '') AS response_id,
    nullIf(SpanAttributes['gen_ai.conversation.id'], '') AS conversation_id,
    nullIf(SpanAttributes['server.address'], '') AS server_address,
    prompt_name,
    prompt_version,
    index_name,
    index_version,
    nullIf(SpanAttributes['driftline.retrieval.embedding_model'], '') AS embedding_model,
    toUInt32OrNull(SpanAttributes['driftline.retrieval.documents']) AS retrieved_documents,
    confidence_mean,
    toFloat64OrNull(SpanAttributes['driftline.input.confidence.min']) AS confidence_min,
    toUInt32OrNull(SpanAttributes['driftline.input.confidence.low_words']) AS confidence_low_words,
    nullIf(SpanAttributes['driftline.input.confidence.engine'], '') AS confidence_engine,
    input_tokens_raw AS input_tokens,
    coalesce(output_tokens_raw, if(total_tokens_raw >= input_tokens_raw, total_tokens_raw - input_tokens_raw, NULL)) AS output_tokens,
    coalesce(total_tokens_raw, input_tokens_raw + output_tokens_raw) AS total_tokens,
    cached_tokens_any AS cached_tokens,
    coalesce(toUInt64OrNull(SpanAttributes['gen_ai.usage.reasoning.output_tokens']), toUInt64OrNull(SpanAttributes['gen_ai.usage.reasoning_tokens']),
             toUInt64OrNull(SpanAttributes['llm.token_count.completion_details.reasoning'])) AS reasoning_tokens,
    Duration / 1e9 AS duration_s,
    -- Only a stream has a first chunk (and time per output token): OpenLIT writes its whole latency
    -- as TTFT on a plain call.
    if(ifNull(stream_any, true),
       coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']),
                toFloat64OrNull(SpanAttributes['gen_ai.server.time_to_first_token']),
                if(first_chunk_event > 0,
                   (toUnixTimestamp64Nano(Events.Timestamp[first_chunk_event]) - toUnixTimestamp64Nano(Timestamp)) / 1e9,
                   NULL)),
       NULL) AS ttft_s,
    if(ifNull(stream_any, true),
       coalesce(toFloat64OrNull(SpanAttributes['driftline.stream.time_per_output_token']),
                toFloat64OrNull(SpanAttributes['gen_ai.server.time_per_output_token'])),
       NULL) AS time_per_output_token_s,
    toFloat64OrNull(SpanAttributes['driftline.stream.longest_stall']) AS longest_stall_s,
    stream_any AS stream,
    if(finish_reason_any = 'tool_call', 'tool_calls', finish_reason_any) AS finish_reason,
    multiIf(SpanAttributes['driftline.stream.cancelled'] != '', SpanAttributes['driftline.stream.cancelled'] = 'true',
            SpanAttributes['gen_ai.agent.invocation.end_reason'] = 'interrupted', true,
            ifNull(stream_any, false) AND finish_reason_any IS NULL AND StatusCode != 'Error') AS cancelled,
    toUInt64OrNull(SpanAttributes['driftline.stream.tokens_delivered']) AS tokens_delivered,
    tokens_after_cancel_any AS tokens_after_cancel,
    StatusCode AS status,
    error_type_clean AS error_type,
    http_status_any AS http_status,
    ifNull(http_status_any = 429, false) OR positionCaseInsensitive(ifNull(error_type_clean, ''), 'RateLimit') > 0 AS rate_limited,
    coalesce(cost_reported, priced.2) AS cost_usd,
    nullIf(SpanAttributes['driftline.validation.outcome'], '') AS validation,
    -- Added by migration 0006, after the columns above (a backfill inserts by position).
    cache_write_any AS cache_write_tokens,
    -- OpenLIT counts a stream's tokens itself when the provider sent no usage, and then (only
    -- then) writes no cache-read count, which it writes, even 0, from every usage it is given.
    ScopeName = 'openlit.instrumentation.openai' AND ifNull(stream_any, false) AND input_tokens_raw IS NOT NULL
        AND NOT mapContains(SpanAttributes, 'gen_ai.usage.cache_read.input_tokens') AS tokens_estimated,
    coalesce(toFloat64OrNull(SpanAttributes['driftline.cost']), cost_amount_otel, cost_openlit, priced.2) AS cost_amount,
    arrayMap(s -> if(s IS NULL, NULL, coalesce(cost_currency_otel, 'USD')), [cost_source_any])[1] AS cost_currency,
    cost_source_any AS cost_source,
    arrayMap(s -> ifNull(s = 'openlit' OR startsWith(s, 'genai-prices'), false), [cost_source_any])[1] AS cost_computed,
    -- The cancellation tax priced the same way: the tokens billed after the cancel at the output rate.
    arrayMap(r -> if(r.5 != '' AND tokens_after_cancel_any > 0, tokens_after_cancel_any * r.4, NULL), [rates])[1] AS cancellation_cost_usd
