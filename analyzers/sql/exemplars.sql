-- The worst calls of each of a few suspect segments in the incident window: trace ids to open,
-- one scan for them all. <columns> is one bounded sorted array per segment (its bound equality
-- terms as the condition, badness ascending: worst first), <any> the segments' disjunction.
SELECT $columns
FROM $source
WHERE time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)} AND $den$filters AND ($any)
