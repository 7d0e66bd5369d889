-- Which otel_traces spans are GenAI calls (a boolean expression over one span).
SpanName NOT IN ('driftline.change', 'driftline.evaluation')
  AND (SpanAttributes['gen_ai.operation.name'] != '' OR SpanAttributes['gen_ai.provider.name'] != ''
       OR SpanAttributes['gen_ai.system'] != '' OR SpanAttributes['gen_ai.request.model'] != ''
       OR SpanAttributes['llm.model_name'] != '' OR SpanAttributes['openinference.span.kind'] IN ('LLM', 'EMBEDDING'))
