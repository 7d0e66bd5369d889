-- llm_calls prices a call in its columns' defaults, not in its view: the view (llm_calls_columns.sql)
-- hands over what the span reported about cost in EPHEMERAL columns (never stored), and the table
-- computes the stored cost columns from those and the call's tokens, with rates from the store's
-- price table (collector/store/_prices.py) of the answering model, else of the requested one.
-- Why here: a materialized view analyses its SELECT anew on every insert, and the price lookups
-- were the costliest part of it; the table's defaults are evaluated once per insert at a fraction
-- of that (bench/bench_export.py). Run by 0002 and 0006 after they shape the table, and by 0009,
-- which moved pricing here; every clause is idempotent.

-- A part written before 0006 added the cost columns lacks them, and a column a part lacks is read
-- through its default: its calls would show costs computed at read time instead of none. Writing
-- the columns as they read before the defaults below exist keeps those calls as they were (where a
-- part has them, the values stay); after the first run, no part lacks them.
ALTER TABLE llm_calls UPDATE cost_amount = cost_amount, cost_currency = cost_currency, cost_source = cost_source,
    cost_computed = cost_computed, cancellation_cost_usd = cancellation_cost_usd WHERE true
SETTINGS mutations_sync = 1;

ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS reported_cost_usd Nullable(Float64) EPHEMERAL,
    ADD COLUMN IF NOT EXISTS reported_cost_amount Nullable(Float64) EPHEMERAL,
    ADD COLUMN IF NOT EXISTS reported_cost_currency Nullable(String) EPHEMERAL,
    ADD COLUMN IF NOT EXISTS reported_cost_source Nullable(String) EPHEMERAL,
    ADD COLUMN IF NOT EXISTS reported_output_tokens Nullable(UInt64) EPHEMERAL,
    -- All zero, with no source, when the price table knows neither model.
    ADD COLUMN IF NOT EXISTS rates Tuple(input Float64, cache_read Float64, cache_write Float64, output Float64, source String) EPHEMERAL
        if(joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(response_model, '')).5 != '',
           joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(response_model, '')),
           joinGet('{database}.model_prices', 'rates', ifNull(provider, ''), ifNull(request_model, ''))),
    -- Only a call with tokens and no reported cost is priced. Input tokens include the cached ones
    -- (as providers and genai-prices count them); output tokens are those the span reported.
    ADD COLUMN IF NOT EXISTS computed_cost_usd Nullable(Float64) EPHEMERAL
        if(rates.5 = '' OR reported_cost_usd IS NOT NULL OR (input_tokens IS NULL AND reported_output_tokens IS NULL), NULL,
           (ifNull(input_tokens, 0) - least(ifNull(input_tokens, 0), ifNull(cached_tokens, 0) + ifNull(cache_write_tokens, 0))) * rates.1
           + ifNull(cached_tokens, 0) * rates.2 + ifNull(cache_write_tokens, 0) * rates.3 + ifNull(reported_output_tokens, 0) * rates.4);

ALTER TABLE llm_calls
    MODIFY COLUMN cost_usd DEFAULT coalesce(reported_cost_usd, computed_cost_usd),
    MODIFY COLUMN cost_amount DEFAULT coalesce(reported_cost_amount, computed_cost_usd),
    MODIFY COLUMN cost_source DEFAULT coalesce(reported_cost_source, if(computed_cost_usd IS NULL, NULL, rates.5)),
    MODIFY COLUMN cost_currency DEFAULT if(cost_source IS NULL, NULL, coalesce(reported_cost_currency, 'USD')),
    MODIFY COLUMN cost_computed DEFAULT ifNull(cost_source = 'openlit' OR startsWith(cost_source, 'genai-prices'), false),
    -- The cancellation tax priced the same way: the tokens billed after the cancel at the output rate.
    MODIFY COLUMN cancellation_cost_usd DEFAULT if(rates.5 != '' AND tokens_after_cancel > 0, tokens_after_cancel * rates.4, NULL);
