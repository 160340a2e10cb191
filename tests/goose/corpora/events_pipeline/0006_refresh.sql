-- +goose NO TRANSACTION
-- +goose Up
REFRESH MATERIALIZED VIEW CONCURRENTLY daily_counts;
VACUUM (ANALYZE) events_click;

-- +goose Down
REFRESH MATERIALIZED VIEW daily_counts;
