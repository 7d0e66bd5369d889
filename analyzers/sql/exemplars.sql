-- The worst incident calls of each of a few suspect segments, in one scan: trace ids to open.
-- <matches> gives each call the indices of the suspects it belongs to (-1 elsewhere).
SELECT k, trace_id
FROM $source
ARRAY JOIN arrayFilter(x -> x >= 0, [$matches]) AS k
WHERE time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AND $den$filters
ORDER BY k, $worst, time
LIMIT {limit:UInt32} BY k
