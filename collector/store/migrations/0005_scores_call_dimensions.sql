-- Scores carry the dimensions of the call they judge, so quality panels and analyzers read
-- llm_scores alone instead of joining it to llm_calls (see llm_scores_select). Rows whose
-- call_time is NULL (later scores, log events, rows written before this migration) are looked
-- up in llm_calls by the queries; they need no backfill.
ALTER TABLE llm_scores
    ADD COLUMN IF NOT EXISTS call_time Nullable(DateTime64(9)) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS environment LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS route LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS tenant LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS service_version LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS provider LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS request_model LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS response_model LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS system_fingerprint LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS prompt_name LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS prompt_version LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS index_name LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS index_version LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS confidence_mean Nullable(Float64);

DROP VIEW IF EXISTS llm_scores_mv SYNC;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_scores_mv TO llm_scores AS {include: llm_scores_select};

-- Spans written while the view was being replaced (as in 0003: the rows no source span gave yet).
INSERT INTO llm_scores SELECT * FROM ({include: llm_scores_select})
WHERE source_span_id NOT IN (SELECT source_span_id FROM llm_scores);
