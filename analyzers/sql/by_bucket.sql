-- Signals per time bucket, one query for any number of them. <columns> are aggregate
-- expressions from the signal registry, <source> is llm_calls or the scored calls,
-- <filters> the fixed equality filters (values bound).
SELECT toStartOfInterval(time, toIntervalSecond({bucket:UInt32})) AS bucket$columns
FROM $source
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
GROUP BY bucket
ORDER BY bucket
