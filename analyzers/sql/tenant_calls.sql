-- Calls per time bucket of each tenant (NULL: calls without one), for the traffic shares a
-- tenant-mix shift steps (see _mix). The filters slot holds the bound equality filters.
SELECT toStartOfInterval(time, toIntervalSecond({bucket:UInt32})) AS bucket, tenant, count() AS calls
FROM llm_calls
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
GROUP BY bucket, tenant
