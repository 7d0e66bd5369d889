-- One row per GenAI span, whichever convention wrote it. Normalisation happens here, once:
-- OTel gen_ai.* (current and legacy), OpenInference llm.*, OpenLLMetry, OpenLIT.
-- Missing values stay NULL, never 0.
{include: llm_calls_columns}
FROM otel_traces
WHERE {include: llm_calls_spans}
