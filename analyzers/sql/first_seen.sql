-- First appearance of each value of the change-bearing dimensions (inferred changes).
SELECT dimension, value, min(first_seen) AS first_seen
FROM first_seen
WHERE dimension IN {dimensions:Array(String)}$filters
GROUP BY dimension, value
