-- What the store holds per model and prompt version: calls, time-to-first-token p95 and the
-- mean of one evaluation (the judge's quality score) over the calls it judged, rounded so that
-- the same data always prints the same figures (float sums depend on the order of threads).
SELECT
    ifNull(c.provider, '') AS provider,
    ifNull(c.request_model, '') AS request_model,
    ifNull(c.response_model, '') AS response_model,
    concat(ifNull(c.prompt_name, ''), ' ', ifNull(c.prompt_version, '')) AS prompt,
    count() AS calls,
    round(quantileExact(0.95)(c.ttft_s), 4) AS ttft_p95_s,
    round(avg(s.quality), 4) AS quality
FROM llm_calls AS c
LEFT JOIN (
    SELECT trace_id, span_id, avg(score) AS quality
    FROM llm_scores
    WHERE evaluation = {evaluation:String}
    GROUP BY trace_id, span_id
) AS s ON s.trace_id = c.trace_id AND s.span_id = c.span_id
GROUP BY provider, request_model, response_model, prompt
ORDER BY provider, request_model, response_model, prompt
SETTINGS join_use_nulls = 1
