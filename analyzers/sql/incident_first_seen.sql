-- Values of change-bearing dimensions first seen inside the window (the first_seen table), with
-- the first calls in scope that carried them as exemplars. A value seen within `settle_s` of the
-- start of its service's data is not a change (it was there when recording began) and is left out.
-- The service_filter and filters slots hold the fixed equality filters (values bound).
WITH
    firsts AS (
        SELECT dimension, scope, value, service, min(first_seen) AS first_seen
        FROM first_seen
        WHERE 1$service_filter
        GROUP BY dimension, scope, value, service
    ),
    origins AS (
        SELECT service, min(first_seen) AS began FROM firsts GROUP BY service
    ),
    used AS (
        SELECT
            d.1 AS dimension,
            assumeNotNull(d.2) AS value,
            service,
            count() AS calls,
            arrayMap(x -> x.2, groupArraySorted(3)((time, trace_id))) AS exemplars
        FROM llm_calls
        ARRAY JOIN [
            ('request_model', request_model),
            ('response_model', response_model),
            ('system_fingerprint', system_fingerprint),
            ('prompt_version', prompt_version),
            ('index_version', index_version),
            ('service_version', service_version)
        ] AS d
        WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}
          AND d.2 IS NOT NULL$filters
        GROUP BY dimension, value, service
    )
SELECT
    f.dimension,
    f.scope,
    f.value,
    f.service,
    toTimeZone(f.first_seen, 'UTC') AS first_seen,
    u.calls,
    u.exemplars
FROM firsts AS f
INNER JOIN origins AS o ON o.service = f.service
INNER JOIN used AS u ON u.dimension = f.dimension AND u.value = f.value AND u.service = f.service
WHERE f.first_seen >= {start:DateTime64(9)} AND f.first_seen < {end:DateTime64(9)}
  AND f.first_seen > o.began + toIntervalSecond({settle_s:UInt32})
ORDER BY f.first_seen, f.dimension
LIMIT 500
