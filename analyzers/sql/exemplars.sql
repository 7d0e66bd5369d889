-- The worst calls of each of a few suspect segments of one or more signals in the incident window:
-- trace ids to open, one scan for them all. <columns> is one bounded sorted array per segment and
-- signal (the signal's calls and the segment's bound equality terms as the condition, badness
-- ascending: worst first), <any> their disjunction.
SELECT $columns
FROM $source
WHERE time >= {i_start:DateTime64(9)} AND time < {i_end:DateTime64(9)}$filters AND ($any)
