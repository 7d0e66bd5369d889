-- first_seen's view groups the calls by their dimensions before spreading them into a row per
-- dimension (first_seen_select.sql): the same rows for less work on each insert.
-- Swapped in place (MODIFY QUERY, a plain ALTER since ClickHouse 23.12), so no call goes uncounted
-- while it changes. On a new store, 0003 already made this very view.
{upgrade only}
ALTER TABLE first_seen_mv MODIFY QUERY {include: first_seen_select};
