-- Leaf aggregates for attribution: one row per combination of the allow-listed dimensions,
-- baseline and incident side by side as conditional aggregates (four per signal: count and
-- numerator sum in each window), in one GROUP BY scan. <prelude> may define the scalars the
-- signals need (the baseline percentile of a latency signal).
WITH $prelude
    time >= {b_start:DateTime64(9)} AND time < {b_end:DateTime64(9)} AS in_base,
    time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AS in_inc
SELECT $dimensions$aggregates
FROM $source
WHERE time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)} AND (in_base OR in_inc)$filters
GROUP BY $keys
