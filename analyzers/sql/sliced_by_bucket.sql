-- Signals per time bucket over the whole scope and per slice (one route, provider or service),
-- in one scan: the inner query keeps partial aggregates per bucket and every slice column at
-- once (sums, percentile digests), the outer one rolls them up by GROUPING SETS into the whole
-- scope and each slice. <slice_dim>/<slice_value> name a row's set ('' for the whole scope),
-- <partial>/<merged> come from the signal registry, <keys> is an extra grouping key (the
-- evaluation) or empty, <filters> the bound equality filters. <slice_columns> may also compute
-- segment columns (a change's own calls, see _anchors.segment_columns), grouped by <slice_keys>.
SELECT bucket, $slice_dim AS slice_dim, $slice_value AS slice_value$keys$merged
FROM (
    SELECT toStartOfInterval(time, toIntervalSecond({bucket:UInt32})) AS bucket$keys$slice_columns$partial
    FROM $source
    WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
    GROUP BY bucket$keys$slice_keys
)
GROUP BY GROUPING SETS ($sets)
