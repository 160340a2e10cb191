-- +goose Up
-- +goose no transaction
SET search_path TO cms, public;

CREATE TABLE IF NOT EXISTS posts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id integer NOT NULL REFERENCES authors (id),
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    published_at timestamptz
);

CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_author_idx ON posts (author_id);

-- +goose Down
SET search_path TO cms, public;
DROP TABLE IF EXISTS posts;
