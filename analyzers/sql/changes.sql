-- Annotated changes in a time range.
SELECT time, kind, target, version, description
FROM changes
WHERE time >= {lo:DateTime64(9)} AND time < {hi:DateTime64(9)}$filters
ORDER BY time
