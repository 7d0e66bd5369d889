-- One evaluation score per judged scenario call, linked by trace and span id.
INSERT INTO llm_scores (time, trace_id, span_id, service, evaluation, score)
SELECT fromUnixTimestamp64Nano(r.t_ns) AS time,
       concat(leftPad(hex(r.scenario), 8, '0'), leftPad(hex(r.seq), 24, '0')) AS trace_id,
       leftPad(hex(r.seq), 16, '0') AS span_id,
       {services:Array(String)}[r.scenario + 1] AS service,
       {evaluation:String} AS evaluation, r.score AS score
FROM scenario_raw AS r
WHERE r.judged = 1
