-- Per bucket: calls, failures (other than 429), 429s and cancellations, with a few exemplar traces
-- of each; Python marks the buckets far above the window's usual rate as bursts.
-- The filters slot holds the fixed equality filters (values bound).
SELECT
    toTimeZone(toStartOfInterval(time, toIntervalSecond({bucket_s:UInt32})), 'UTC') AS bucket,
    count() AS calls,
    countIf(status = 'Error' AND NOT rate_limited) AS errors,
    countIf(rate_limited) AS rate_limits,
    countIf(cancelled) AS cancellations,
    groupArrayIf(3)(trace_id, status = 'Error' AND NOT rate_limited) AS errors_ids,
    groupArrayIf(3)(trace_id, rate_limited) AS rate_limits_ids,
    groupArrayIf(3)(trace_id, cancelled) AS cancellations_ids
FROM llm_calls
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
GROUP BY bucket
ORDER BY bucket
