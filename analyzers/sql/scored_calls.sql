(
    -- Each evaluation result with the dimensions of the call it judges, timed when it was recorded.
    -- Scores are the smaller side, so they are the joined (hash) side; a judged call is looked
    -- for up to a day before its score. The join key is the span id alone (random 64 bits:
    -- no two calls of one window share it), twice as fast as joining on trace id too.
    SELECT s.time AS time, s.evaluation AS evaluation, s.score AS score,
           c.trace_id AS trace_id, c.span_id AS span_id, c.service AS service,
           c.environment AS environment, c.route AS route, c.tenant AS tenant,
           c.service_version AS service_version, c.provider AS provider,
           c.request_model AS request_model, c.response_model AS response_model,
           c.system_fingerprint AS system_fingerprint, c.prompt_version AS prompt_version,
           c.index_version AS index_version, c.confidence_mean AS confidence_mean
    FROM llm_calls AS c
    INNER JOIN (
        SELECT trace_id, span_id, time, evaluation, score
        FROM llm_scores
        WHERE score IS NOT NULL AND time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)}$evaluation
    ) AS s ON c.span_id = s.span_id
    WHERE c.time >= {lo:DateTime64(9)} - INTERVAL 1 DAY AND c.time < {hi:DateTime64(9)}
)
