-- +goose Up
SET search_path TO cms, public;

CREATE TABLE tags (
    name text PRIMARY KEY,
    post_count integer NOT NULL DEFAULT 0
);

CREATE TABLE post_tags (
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag text NOT NULL REFERENCES tags (name) ON UPDATE CASCADE,
    PRIMARY KEY (post_id, tag)
);

-- +goose StatementBegin
-- Keeps tags.post_count; a statement-level trigger would be cheaper; this one is simple.
CREATE FUNCTION count_post_tags() RETURNS trigger LANGUAGE plpgsql AS $count$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE cms.tags SET post_count = post_count + 1 WHERE name = NEW.tag;
        RETURN NEW;
    END IF;
    UPDATE cms.tags SET post_count = post_count - 1 WHERE name = OLD.tag; -- a DELETE
    RETURN OLD;
END;
$count$;
-- +goose StatementEnd

CREATE TRIGGER post_tags_count AFTER INSERT OR DELETE ON post_tags
    FOR EACH ROW EXECUTE FUNCTION count_post_tags();

-- +goose Down
SET search_path TO cms, public;
DROP TABLE post_tags;
DROP FUNCTION count_post_tags();
DROP TABLE tags;
