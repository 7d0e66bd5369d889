-- Generated scenario calls into llm_calls (the first_seen view fills from them as in production).
INSERT INTO llm_calls (time, trace_id, span_id, service, span_name, operation, route, tenant, provider, request_model,
                       response_model, system_fingerprint, prompt_name, prompt_version, index_name, index_version,
                       confidence_mean, service_version, duration_s, status)
SELECT fromUnixTimestamp64Nano(r.t_ns) AS time,
       concat(leftPad(hex(r.scenario), 8, '0'), leftPad(hex(r.seq), 24, '0')) AS trace_id,
       leftPad(hex(r.seq), 16, '0') AS span_id,
       {services:Array(String)}[r.scenario + 1] AS service, 'chat' AS span_name, 'chat' AS operation,
       {route_vocab:Array(Nullable(String))}[r.route] AS route,
       {tenant_vocab:Array(Nullable(String))}[r.tenant] AS tenant,
       {provider_vocab:Array(Nullable(String))}[r.provider] AS provider,
       {request_model_vocab:Array(Nullable(String))}[r.request_model] AS request_model,
       {response_model_vocab:Array(Nullable(String))}[r.response_model] AS response_model,
       {system_fingerprint_vocab:Array(Nullable(String))}[r.system_fingerprint] AS system_fingerprint,
       {route_vocab:Array(Nullable(String))}[r.route] AS prompt_name,
       {prompt_version_vocab:Array(Nullable(String))}[r.prompt_version] AS prompt_version,
       if(r.index_version > 1, 'kb-docs', NULL) AS index_name,
       {index_version_vocab:Array(Nullable(String))}[r.index_version] AS index_version,
       if(isNaN(r.confidence), NULL, r.confidence) AS confidence_mean,
       {service_version_vocab:Array(Nullable(String))}[r.service_version] AS service_version,
       r.duration AS duration_s,
       if(r.error = 1, 'Error', 'Unset') AS status
FROM scenario_raw AS r
