-- Evaluation results, explicit changes and inferred first appearances.
CREATE TABLE IF NOT EXISTS llm_scores (
    time DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    service LowCardinality(String),
    evaluation LowCardinality(String),
    score Nullable(Float64),
    label LowCardinality(Nullable(String)),
    explanation Nullable(String) CODEC(ZSTD(1)),
    source_span_id String CODEC(ZSTD(1))
) ENGINE = MergeTree()
PARTITION BY toDate(time)
ORDER BY (evaluation, toStartOfHour(time), time)
{ttl: toDateTime(time)}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

-- As for llm_calls: the view first, then the rows it has not seen (per source span). The columns
-- are named: 0005 adds the judged call's, and replaces this view with one that fills them.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_scores_mv TO llm_scores AS
SELECT time, trace_id, span_id, service, evaluation, score, label, explanation, source_span_id FROM ({include: llm_scores_select});

INSERT INTO llm_scores (time, trace_id, span_id, service, evaluation, score, label, explanation, source_span_id)
SELECT time, trace_id, span_id, service, evaluation, score, label, explanation, source_span_id FROM ({include: llm_scores_select})
WHERE source_span_id NOT IN (SELECT source_span_id FROM llm_scores);

CREATE TABLE IF NOT EXISTS changes (
    time DateTime64(9),
    kind LowCardinality(String),
    target String,
    version Nullable(String),
    description String,
    author Nullable(String),
    service LowCardinality(String),
    environment LowCardinality(Nullable(String)),
    trace_id String,
    span_id String
) ENGINE = MergeTree()
ORDER BY time;

CREATE MATERIALIZED VIEW IF NOT EXISTS changes_mv TO changes AS {include: changes_select};

INSERT INTO changes SELECT * FROM ({include: changes_select}) WHERE span_id NOT IN (SELECT span_id FROM changes);

CREATE TABLE IF NOT EXISTS first_seen (
    dimension LowCardinality(String),
    scope String,
    value String,
    service LowCardinality(String),
    first_seen SimpleAggregateFunction(min, DateTime64(9)),
    last_seen SimpleAggregateFunction(max, DateTime64(9)),
    calls SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree()
ORDER BY (dimension, scope, value, service);

INSERT INTO first_seen SELECT * FROM ({include: first_seen_select}) WHERE (SELECT count() FROM first_seen) = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS first_seen_mv TO first_seen AS {include: first_seen_select};
