(
    -- Each evaluation result with the dimensions of the call it judges, timed when it was recorded;
    -- a judged call is looked for up to a day before its score. A score recorded on the judged
    -- span carries the call's time and dimensions in llm_scores itself (call_time set): no join.
    SELECT time, evaluation, score, trace_id, span_id, service, environment, route, tenant,
           service_version, provider, request_model, response_model, system_fingerprint,
           prompt_version, index_version, confidence_mean
    FROM llm_scores
    WHERE score IS NOT NULL AND time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)}$evaluation
      AND call_time >= {lo:DateTime64(9)} - INTERVAL 1 DAY AND call_time < {hi:DateTime64(9)}
    UNION ALL
    -- The others (given later, or written before llm_scores had the columns) find their call in
    -- llm_calls. Scores are the smaller side, so they are the joined (hash) side; the join key is
    -- a 64-bit hash of the span id (itself random 64 bits: no two calls of one window share it),
    -- which the hash table holds and compares faster than the string.
    SELECT s.time, s.evaluation, s.score, c.trace_id, c.span_id, c.service, c.environment, c.route, c.tenant,
           c.service_version, c.provider, c.request_model, c.response_model, c.system_fingerprint,
           c.prompt_version, c.index_version, c.confidence_mean
    FROM llm_calls AS c
    INNER JOIN (
        SELECT cityHash64(span_id) AS span_key, time, evaluation, score
        FROM llm_scores
        WHERE score IS NOT NULL AND call_time IS NULL AND time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)}$evaluation
    ) AS s ON cityHash64(c.span_id) = s.span_key
    WHERE c.time >= {lo:DateTime64(9)} - INTERVAL 1 DAY AND c.time < {hi:DateTime64(9)}
)
