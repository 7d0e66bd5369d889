-- Issue 14: every real GenAI instrumentation lands right. New columns for the latest GenAI
-- conventions (cache writes), tokens an instrumentation estimated, and where a cost came from;
-- the views are replaced so spans from now on are normalised by the fixed SQL (OpenInference's
-- requested model, embeddings and metadata, every stream flag, first-chunk events, exception
-- events). Rows already stored keep the values they were given.
{upgrade only}
ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS cache_write_tokens Nullable(UInt64),
    ADD COLUMN IF NOT EXISTS tokens_estimated Bool,
    ADD COLUMN IF NOT EXISTS cost_amount Nullable(Float64),
    ADD COLUMN IF NOT EXISTS cost_currency LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS cost_source LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS cost_computed Bool,
    ADD COLUMN IF NOT EXISTS cancellation_cost_usd Nullable(Float64);

-- The price table the view prices calls from when no cost was given (`driftline db prices` loads
-- it from genai-prices; collector/store/_prices.py). As in 0002, which creates it on a new store.
CREATE TABLE IF NOT EXISTS model_prices (
    provider String,
    model String,
    rates Tuple(input Float64, cache_read Float64, cache_write Float64, output Float64, source String)
) ENGINE = Join(ANY, LEFT, provider, model);

-- The columns the view below writes and the table prices calls with (since 0009, as in 0002).
{include: llm_calls_pricing};

DROP VIEW IF EXISTS llm_calls_mv SYNC;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv TO llm_calls AS {include: llm_calls_select};

-- Spans written while the view was being replaced, and GenAI spans the old view did not take
-- (OpenInference embeddings): the calls no span gave yet, as in 0002.
{include: llm_calls_backfill};

DROP VIEW IF EXISTS llm_scores_mv SYNC;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_scores_mv TO llm_scores AS {include: llm_scores_select};

INSERT INTO llm_scores SELECT * FROM ({include: llm_scores_select})
WHERE source_span_id NOT IN (SELECT source_span_id FROM llm_scores);
