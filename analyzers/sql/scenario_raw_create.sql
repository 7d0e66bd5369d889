-- Scratch table for generated scenario calls (numbers only; see _scenarios.write). Negative
-- counts, NaN floats, zero statuses and code 1 stand for NULL.
CREATE TABLE IF NOT EXISTS scenario_raw (
    scenario UInt16, t_ns Int64, seq UInt32,
    route UInt16, tenant UInt16, provider UInt16, request_model UInt16, response_model UInt16,
    system_fingerprint UInt16, prompt_version UInt16, index_version UInt16, service_version UInt16,
    confidence Float64, duration Float64, error UInt8, score Float64,
    error_type UInt16, validation UInt16, ttft Float64, stream Int8, cancelled UInt8,
    delivered Int64, after_cancel Int64, in_tokens Int64, out_tokens Int64, cost Float64,
    http_status UInt16, rate_limited UInt8, judged UInt8
) ENGINE = Memory
