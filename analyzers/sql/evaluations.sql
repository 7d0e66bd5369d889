-- The evaluations with scores in the window.
SELECT evaluation, count(score) AS scores
FROM $source
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
GROUP BY evaluation
HAVING scores > 0
ORDER BY evaluation
