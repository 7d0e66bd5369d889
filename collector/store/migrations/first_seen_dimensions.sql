-- The change-bearing dimensions of a call, one (dimension, scope, value) tuple each: `scope` says
-- what the value belongs to (the requested model for a response model, the prompt name for a prompt
-- version, the index name for an index version).
[
    ('request_model', ifNull(provider, ''), request_model),
    ('response_model', ifNull(request_model, ''), response_model),
    ('system_fingerprint', ifNull(response_model, ''), system_fingerprint),
    ('prompt_version', ifNull(prompt_name, ''), prompt_version),
    ('index_version', ifNull(index_name, ''), index_version),
    ('service_version', '', service_version)
]
