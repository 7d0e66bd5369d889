-- Calls per route of each new value in its first hour (the routes a change reached). The matches
-- slot numbers each value's bound condition (its first hour, its service, its value),
-- `if(<condition>, <i>, 0)`; the filters slot holds the fixed equality filters (values bound).
SELECT anchor, route, count() AS calls
FROM llm_calls
ARRAY JOIN arrayFilter(i -> i > 0, [$matches]) AS anchor
WHERE time >= {since:DateTime64(9)} AND time < {end:DateTime64(9)}
  AND route IS NOT NULL$filters
GROUP BY anchor, route
