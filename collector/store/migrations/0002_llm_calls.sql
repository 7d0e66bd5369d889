-- The price table llm_calls prices calls from (created here since 0006, before the table whose
-- column defaults read it).
CREATE TABLE IF NOT EXISTS model_prices (
    provider String,
    model String,
    rates Tuple(input Float64, cache_read Float64, cache_write Float64, output Float64, source String)
) ENGINE = Join(ANY, LEFT, provider, model);

-- Typed GenAI calls, filled from otel_traces by a materialized view whichever path wrote the spans.
CREATE TABLE IF NOT EXISTS llm_calls (
    time DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    service LowCardinality(String),
    span_name LowCardinality(String),
    service_version LowCardinality(Nullable(String)),
    environment LowCardinality(Nullable(String)),
    route LowCardinality(Nullable(String)),
    tenant LowCardinality(Nullable(String)),
    operation LowCardinality(Nullable(String)),
    provider LowCardinality(Nullable(String)),
    request_model LowCardinality(Nullable(String)),
    response_model LowCardinality(Nullable(String)),
    system_fingerprint LowCardinality(Nullable(String)),
    response_id Nullable(String) CODEC(ZSTD(1)),
    conversation_id Nullable(String) CODEC(ZSTD(1)),
    server_address LowCardinality(Nullable(String)),
    prompt_name LowCardinality(Nullable(String)),
    prompt_version LowCardinality(Nullable(String)),
    index_name LowCardinality(Nullable(String)),
    index_version LowCardinality(Nullable(String)),
    embedding_model LowCardinality(Nullable(String)),
    retrieved_documents Nullable(UInt32),
    confidence_mean Nullable(Float64),
    confidence_min Nullable(Float64),
    confidence_low_words Nullable(UInt32),
    confidence_engine LowCardinality(Nullable(String)),
    input_tokens Nullable(UInt64),
    output_tokens Nullable(UInt64),
    total_tokens Nullable(UInt64),
    cached_tokens Nullable(UInt64),
    reasoning_tokens Nullable(UInt64),
    duration_s Float64,
    ttft_s Nullable(Float64),
    time_per_output_token_s Nullable(Float64),
    longest_stall_s Nullable(Float64),
    stream Nullable(Bool),
    finish_reason LowCardinality(Nullable(String)),
    cancelled Bool,
    tokens_delivered Nullable(UInt64),
    tokens_after_cancel Nullable(UInt64),
    status LowCardinality(String),
    error_type LowCardinality(Nullable(String)),
    http_status Nullable(UInt16),
    rate_limited Bool,
    cost_usd Nullable(Float64),
    validation LowCardinality(Nullable(String)),
    -- Added by 0006 on older stores (ALTER TABLE there, the same definitions).
    cache_write_tokens Nullable(UInt64),
    tokens_estimated Bool,
    cost_amount Nullable(Float64),
    cost_currency LowCardinality(Nullable(String)),
    cost_source LowCardinality(Nullable(String)),
    cost_computed Bool,
    cancellation_cost_usd Nullable(Float64),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(time)
ORDER BY (service, toStartOfHour(time), time)
{ttl: toDateTime(time)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- llm_calls prices calls in its cost columns' defaults (since 0009; 0006 and 0009 do the same on
-- older stores).
{include: llm_calls_pricing};

-- The view first, then a backfill of the spans it has not seen (an OTel Collector may have written
-- them before driftline came): spans written while migrate runs land exactly once, and a re-run
-- after a crash, even one in the middle of the backfill, adds only what is missing.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv TO llm_calls AS {include: llm_calls_select};

{include: llm_calls_backfill};
