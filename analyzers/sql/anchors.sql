-- Values of change-bearing dimensions first seen inside the window (the first_seen table), with
-- their service; a value seen within `settle_s` of the start of its service's data is no change
-- (it was there when recording began). The service_filter slot holds the service filter (bound).
WITH
    firsts AS (
        SELECT dimension, value, service, min(first_seen) AS first_seen
        FROM first_seen
        WHERE 1$service_filter
        GROUP BY dimension, value, service
    ),
    origins AS (
        SELECT service, min(first_seen) AS began FROM firsts GROUP BY service
    )
SELECT f.dimension, f.value, f.service, toTimeZone(f.first_seen, 'UTC') AS first_seen
FROM firsts AS f
INNER JOIN origins AS o ON o.service = f.service
WHERE f.first_seen >= {start:DateTime64(9)} AND f.first_seen < {end:DateTime64(9)}
  AND f.first_seen > o.began + toIntervalSecond({settle_s:UInt32})
ORDER BY f.first_seen, f.dimension, f.value
LIMIT 100
