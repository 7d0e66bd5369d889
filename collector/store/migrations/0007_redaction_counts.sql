-- How many values each redaction rule changed, per day and per writer (serve, exporter):
-- counts, never contents. `driftline db status` sums them; /metrics has serve's since it started.
CREATE TABLE IF NOT EXISTS redaction_counts (
    Day Date,
    Source LowCardinality(String),
    Rule LowCardinality(String),
    Changed UInt64
) ENGINE = SummingMergeTree(Changed)
ORDER BY (Day, Source, Rule);
