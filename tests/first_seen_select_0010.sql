-- Inferred changes: the first time each value of a change-bearing dimension was seen, per service.
-- `scope` says what the value belongs to (the requested model for a response model, the prompt
-- name for a prompt version, the index name for an index version).
SELECT
    d.1 AS dimension,
    d.2 AS scope,
    assumeNotNull(d.3) AS value,
    service,
    min(time) AS first_seen,
    max(time) AS last_seen,
    count() AS calls
FROM llm_calls
ARRAY JOIN [
    ('request_model', ifNull(provider, ''), request_model),
    ('response_model', ifNull(request_model, ''), response_model),
    ('system_fingerprint', ifNull(response_model, ''), system_fingerprint),
    ('prompt_version', ifNull(prompt_name, ''), prompt_version),
    ('index_version', ifNull(index_name, ''), index_version),
    ('service_version', '', service_version)
] AS d
WHERE d.3 IS NOT NULL
GROUP BY dimension, scope, value, service
