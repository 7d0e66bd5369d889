-- first_seen's view up to schema version 10: every call spread into a row per dimension, then grouped.
SELECT
    d.1 AS dimension,
    d.2 AS scope,
    assumeNotNull(d.3) AS value,
    service,
    min(time) AS first_seen,
    max(time) AS last_seen,
    count() AS calls
FROM llm_calls
ARRAY JOIN {include: first_seen_dimensions} AS d
WHERE d.3 IS NOT NULL
GROUP BY dimension, scope, value, service
