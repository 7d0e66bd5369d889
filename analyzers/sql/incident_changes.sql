-- Annotated changes inside the window (driftline annotate, annotate()), oldest first.
-- Changes belong to a service, not a route or tenant, so the filters slot holds only the service/environment filters.
SELECT
    toTimeZone(time, 'UTC') AS time,
    kind,
    target,
    version,
    description,
    author,
    service,
    trace_id
FROM changes
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
ORDER BY time
LIMIT 1000
