-- +goose Up
SET search_path TO cms, public;
INSERT INTO authors (id, handle, display_name, bio) VALUES
    (1, 'ada', 'Ada L.', 'writes about engines; and numbers'),
    (2, 'grace', 'Grace H.', 'compilers -- and ships');
INSERT INTO posts (author_id, title, body, published_at) VALUES
    (1, 'Notes on the Analytical Engine', 'The engine weaves algebraic patterns.', '2023-01-10 09:00:00+00'),
    (2, 'A First Compiler', 'It translated mathematical code.', NULL);
INSERT INTO tags (name) VALUES ('history'), ('compilers');
INSERT INTO post_tags (post_id, tag)
SELECT p.id, t.tag FROM posts p CROSS JOIN (VALUES ('history')) AS t (tag)
UNION ALL
SELECT p.id, 'compilers' FROM posts p WHERE p.author_id = 2;
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT post_count FROM cms.tags WHERE name = 'history') <> 2 THEN
        RAISE EXCEPTION 'the tag trigger did not count; history has %',
            (SELECT post_count FROM cms.tags WHERE name = 'history');
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
SET search_path TO cms, public;
DELETE FROM post_tags;
DELETE FROM tags;
DELETE FROM posts;
DELETE FROM authors WHERE handle IN ('ada', 'grace');
