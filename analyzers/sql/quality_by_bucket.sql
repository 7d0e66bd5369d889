-- Mean score per evaluation and time bucket (every quality:<evaluation> signal in one query).
SELECT toStartOfInterval(time, toIntervalSecond({bucket:UInt32})) AS bucket, evaluation,
       avg(score) AS value, count(score) AS calls, sum(score * score) AS squares
FROM $source
WHERE time >= {start:DateTime64(9)} AND time < {end:DateTime64(9)}$filters
GROUP BY evaluation, bucket
ORDER BY evaluation, bucket
