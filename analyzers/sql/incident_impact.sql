-- What the incident cost: calls, failures and spend in the incident period [i_start, i_end)
-- against the window before it, the calls and tenants in the top suspect's segment (segment slot:
-- allow-listed dimensions, values bound), and the cancellation tax (tokens generated after the
-- caller cancelled, priced at the output rate where the store priced them, else their share of
-- the call's cost, pro rata by tokens), and the share of the period's spend that the store
-- computed from its price table because the call reported no cost.
-- The filters slot holds the fixed equality filters (values bound).
WITH
    time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AS in_inc,
    time < {i_start:DateTime64(9)} AS in_base,
    ($segment) AS in_segment
SELECT
    countIf(in_inc) AS calls,
    countIf(in_inc AND in_segment) AS affected,
    arraySort(groupUniqArrayIf(assumeNotNull(tenant), in_inc AND in_segment AND tenant IS NOT NULL)) AS tenants,
    countIf(in_inc AND status = 'Error') AS failed,
    count() AS window_calls,
    sumIf(cost_usd, in_base) / nullIf(countIf(in_base AND cost_usd IS NOT NULL), 0) AS baseline_cost_per_call,
    sumIf(cost_usd, in_inc) / nullIf(countIf(in_inc AND cost_usd IS NOT NULL), 0) AS incident_cost_per_call,
    countIf(in_inc AND cost_usd IS NOT NULL) AS costed_calls,
    sumIf(ifNull(tokens_after_cancel, 0), in_inc) AS tax_tokens,
    sumIf(coalesce(cancellation_cost_usd, cost_usd * tokens_after_cancel / nullIf(ifNull(input_tokens, 0) + ifNull(output_tokens, 0), 0)), in_inc) AS tax_cost,
    sumIf(cost_usd, in_inc AND cost_computed) / nullIf(sumIf(cost_usd, in_inc), 0) AS computed_share
FROM llm_calls
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
