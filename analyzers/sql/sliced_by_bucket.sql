-- Signals per time bucket over the whole scope and per slice (one route, provider or service),
-- in one scan: the inner query keeps partial aggregates per bucket and every slice dimension at
-- once, the outer one rolls them up into the whole scope (slice_dim = '') and into each slice.
-- <partial>/<merged> come from the signal registry, <keys> is an extra grouping key (the
-- evaluation) or empty, <slices> the allow-listed slice dimensions, <filters> bound equalities.
SELECT bucket, slice.1 AS slice_dim, slice.2 AS slice_value$keys$merged
FROM (
    SELECT toStartOfInterval(time, toIntervalSecond({bucket:UInt32})) AS bucket$keys$slice_columns$partial
    FROM $source
    WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
    GROUP BY bucket$keys$slice_columns
)
ARRAY JOIN $slices AS slice
WHERE slice.1 = '' OR slice.2 IS NOT NULL
GROUP BY bucket, slice_dim, slice_value$keys
ORDER BY bucket
