-- llm_calls prices calls in its cost columns' defaults instead of in its view (llm_calls_pricing.sql):
-- the same values for less work on each insert. The view is replaced as in 0006, with the spans
-- written while it was being replaced backfilled. On a new store, 0002 already did all of this.
{upgrade only}
{include: llm_calls_pricing};

DROP VIEW IF EXISTS llm_calls_mv SYNC;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv TO llm_calls AS {include: llm_calls_select};

{include: llm_calls_backfill};
