-- +goose Up
CREATE MATERIALIZED VIEW daily_counts AS
SELECT kind, payload ->> 'page' AS page, count(*) AS events
FROM events
GROUP BY 1, 2
WITH DATA;

CREATE UNIQUE INDEX daily_counts_key ON daily_counts (kind, page);

-- +goose Down
DROP MATERIALIZED VIEW daily_counts;
