-- +goose Up
-- +goose NO TRANSACTION
CREATE INDEX CONCURRENTLY events_click_received_idx ON events_click (received_at);
CREATE INDEX CONCURRENTLY events_view_received_idx ON events_view (received_at);

-- +goose Down
DROP INDEX CONCURRENTLY events_view_received_idx;
DROP INDEX CONCURRENTLY events_click_received_idx;
