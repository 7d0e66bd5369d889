-- llm_calls' view with its price lookups analysed once per column instead of at every use: the same
-- values for less work on each insert (0009 then moved pricing out of the view altogether). Replaced
-- as in 0006, with the spans written while it was being replaced backfilled. On a new store, 0002
-- already made this very view: replacing it again changes nothing. llm_scores' view does not read
-- llm_calls_columns.sql.
{upgrade only}
DROP VIEW IF EXISTS llm_calls_mv SYNC;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv TO llm_calls AS {include: llm_calls_select};

{include: llm_calls_backfill};
