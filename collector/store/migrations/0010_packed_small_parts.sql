-- Small parts stored packed: each part's files in one file instead of a dozen. Every insert writes
-- a part into otel_traces and into each table its views fill, and creating those sixty-odd files
-- was a large share of an export's CPU time on the embedded engine (bench/bench_export.py). Parts
-- of 10 MiB and more (uncompressed; the size from which a part is Wide), merged or inserted whole,
-- keep a file per stream as before. Embedded stores only: packed part storage came to open-source
-- ClickHouse in 2026 (ClickHouse Cloud had it alone before), so a server records this migration
-- without running it.
{embedded only}
ALTER TABLE otel_traces MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE otel_traces_trace_id_ts MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE llm_calls MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE llm_scores MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE changes MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE first_seen MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE otel_logs MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
ALTER TABLE redaction_counts MODIFY SETTING min_bytes_for_full_part_storage = 10485760;
