-- Calls in the window and filters, and what the whole store holds (to say why a window is empty).
-- The filters slot holds the fixed equality filters (values bound).
SELECT
    countIf(time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters) AS in_scope,
    count() AS calls,
    toTimeZone(min(time), 'UTC') AS first,
    toTimeZone(max(time), 'UTC') AS last
FROM llm_calls
