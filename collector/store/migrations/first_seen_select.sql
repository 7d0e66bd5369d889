-- Inferred changes: the first time each value of a change-bearing dimension was seen, per service.
-- The calls are grouped by their dimensions first, and only the groups (a handful per insert) are
-- spread into a row per dimension, not every call six times over (migration 0011; over 21,000 calls
-- read back from llm_calls, 11 ms of CPU instead of 16).
SELECT
    d.1 AS dimension,
    d.2 AS scope,
    assumeNotNull(d.3) AS value,
    service,
    min(group_first_seen) AS first_seen,
    max(group_last_seen) AS last_seen,
    sum(group_calls) AS calls
FROM (
    SELECT service, provider, request_model, response_model, system_fingerprint, prompt_name, prompt_version, index_name,
           index_version, service_version, min(time) AS group_first_seen, max(time) AS group_last_seen, count() AS group_calls
    FROM llm_calls
    GROUP BY service, provider, request_model, response_model, system_fingerprint, prompt_name, prompt_version, index_name,
             index_version, service_version
)
ARRAY JOIN {include: first_seen_dimensions} AS d
WHERE d.3 IS NOT NULL
GROUP BY dimension, scope, value, service
