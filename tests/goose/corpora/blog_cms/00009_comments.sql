-- +goose Up
SET search_path TO cms, public;
CREATE TABLE comments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_email text NOT NULL,
    body text NOT NULL,
    hidden boolean NOT NULL DEFAULT false
);
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY comments_visible ON comments FOR SELECT USING (NOT hidden);
CREATE POLICY comments_write ON comments FOR INSERT
    WITH CHECK (author_email = current_setting('app.email', true));

-- +goose Down
SET search_path TO cms, public;
DROP TABLE comments;
