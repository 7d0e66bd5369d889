-- Leaf aggregates for attribution: one row per combination of the allow-listed dimensions,
-- baseline and incident side by side as conditional aggregates, in one GROUP BY scan.
-- <num>/<den> are the signal's per-call numerator and "has data" condition; <prelude> may
-- define a scalar the signal needs (the baseline percentile for latency signals).
WITH $prelude
    time >= {b_start:DateTime64(9)} AND time < {b_end:DateTime64(9)} AS in_base,
    time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AS in_inc
SELECT $dimensions,
       countIf($den AND in_base) AS b_den, sumIf($num, $den AND in_base) AS b_num,
       countIf($den AND in_inc) AS c_den, sumIf($num, $den AND in_inc) AS c_num
FROM $source
WHERE time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)} AND (in_base OR in_inc)$filters
GROUP BY $keys
HAVING b_den + c_den > 0
