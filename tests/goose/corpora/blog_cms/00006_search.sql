-- +goose Up
SET search_path TO cms, public;
ALTER TABLE posts ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('english', coalesce(title, '') || ' ' || coalesce(body, ''))) STORED;
CREATE INDEX posts_search_idx ON posts USING gin (search);

-- +goose Down
SET search_path TO cms, public;
DROP INDEX posts_search_idx;
ALTER TABLE posts DROP COLUMN search;
