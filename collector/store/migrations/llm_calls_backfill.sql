-- The calls llm_calls does not have yet, from the GenAI spans in otel_traces: each migration that
-- (re)creates llm_calls' view runs it after, for the spans written while there was none and those an
-- older view did not take. The columns are named, in the view's order, because the view also hands
-- over EPHEMERAL ones (llm_calls_pricing.sql), which an insert without a column list leaves out.
INSERT INTO llm_calls (
    time, trace_id, span_id, parent_span_id, service, span_name, service_version, environment, route, tenant, operation,
    provider, request_model, response_model, system_fingerprint, response_id, conversation_id, server_address, prompt_name,
    prompt_version, index_name, index_version, embedding_model, retrieved_documents, confidence_mean, confidence_min,
    confidence_low_words, confidence_engine, input_tokens, output_tokens, total_tokens, cached_tokens, reasoning_tokens,
    duration_s, ttft_s, time_per_output_token_s, longest_stall_s, stream, finish_reason, cancelled, tokens_delivered,
    tokens_after_cancel, status, error_type, http_status, rate_limited, validation, cache_write_tokens, tokens_estimated,
    reported_cost_usd, reported_cost_amount, reported_cost_currency, reported_cost_source, reported_output_tokens)
SELECT * FROM ({include: llm_calls_select})
WHERE (trace_id, span_id) NOT IN (SELECT trace_id, span_id FROM llm_calls)
