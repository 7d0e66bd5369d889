-- The worst calls of one suspect segment in the incident window: trace ids to open.
SELECT trace_id
FROM $source
WHERE time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AND $den$filters$match
ORDER BY $worst, time
LIMIT {limit:UInt32}
