-- Scratch table for generated scenario calls (numbers only; see _scenarios.write).
CREATE TABLE IF NOT EXISTS scenario_raw (
    scenario UInt16, t_ns Int64, seq UInt32,
    route UInt16, tenant UInt16, provider UInt16, request_model UInt16, response_model UInt16,
    system_fingerprint UInt16, prompt_version UInt16, index_version UInt16, service_version UInt16,
    confidence Float64, duration Float64, error UInt8, score Float64
) ENGINE = Memory
