-- Logs as the OpenTelemetry Collector contrib ClickHouse exporter stores them, column for column
-- (exporter/clickhouseexporter/internal/sqltemplates/logs_table.sql), so either side can write them.
-- The exporter's table has no column for a record's event_name: writers keep it in
-- LogAttributes['event.name'] (driftline serve does; so did the OTel Events API).
CREATE TABLE IF NOT EXISTS otel_logs (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),

    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,
    INDEX idx_body_ngrambf Body TYPE ngrambf_v1(4, 32768, 3, 0) GRANULARITY 1
) ENGINE = MergeTree()
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
{ttl: TimestampTime}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- Evaluation results sent as log events reach llm_scores too (Collector-written rows backfilled once;
-- columns named, as 0005 adds more).
INSERT INTO llm_scores (time, trace_id, span_id, service, evaluation, score, label, explanation, source_span_id)
SELECT * FROM ({include: llm_scores_logs_select})
WHERE (trace_id, span_id, evaluation, time) NOT IN (SELECT trace_id, span_id, evaluation, time FROM llm_scores);

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_scores_logs_mv TO llm_scores AS {include: llm_scores_logs_select};

-- driftline serve replays its spool with insert deduplication tokens; a non-replicated MergeTree
-- only remembers tokens with a deduplication window, and every table a view fills needs one too.
ALTER TABLE otel_traces MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE otel_logs MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE otel_traces_trace_id_ts MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE llm_calls MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE llm_scores MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE changes MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE first_seen MODIFY SETTING non_replicated_deduplication_window = 1000;
