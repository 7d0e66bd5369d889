-- Per route each new value reached in its first hour: its calls there, the route's calls in that
-- hour, and the request models of the value's calls. The hours slot numbers each value's first
-- hour on its service, `if(<time and service>, <i>, 0)`; the carries slot lists, in the same
-- order, each value's own condition (its dimension equals it); the filters slot holds the fixed
-- equality filters (values bound).
SELECT anchor, route, countIf($carries) AS calls, count() AS route_calls,
       groupUniqArrayIf(8)(request_model, $carries) AS models
FROM llm_calls
ARRAY JOIN arrayFilter(i -> i > 0, [$hours]) AS anchor
WHERE time >= {since:DateTime64(9)} AND time < {end:DateTime64(9)}
  AND route IS NOT NULL$filters
GROUP BY anchor, route
HAVING calls > 0
