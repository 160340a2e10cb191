-- +goose Up
SET search_path TO cms, public;

-- A SQL-standard body: parsed when the function is created, so its ';' need the block.
-- +goose StatementBegin
CREATE FUNCTION slugify(title text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
BEGIN ATOMIC
    SELECT trim(BOTH '-' FROM lower(regexp_replace(title, '[^A-Za-z0-9]+', '-', 'g')));
END;
-- +goose StatementEnd

ALTER TABLE posts ADD COLUMN slug text GENERATED ALWAYS AS (cms.slugify(title)) STORED;
CREATE UNIQUE INDEX posts_slug_key ON posts (slug);

-- +goose Down
SET search_path TO cms, public;
DROP INDEX posts_slug_key;
ALTER TABLE posts DROP COLUMN slug;
DROP FUNCTION slugify(text);
