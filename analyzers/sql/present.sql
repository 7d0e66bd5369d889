-- How many calls carry data for each llm_calls signal in the window (<columns>: countIf per signal).
SELECT count() AS calls$columns
FROM llm_calls
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
