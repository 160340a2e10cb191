-- +goose Up
INSERT INTO events (kind, payload)
SELECT (ARRAY['click', 'view', 'scroll'])[1 + n % 3], jsonb_build_object('n', n, 'page', '/p/' || (n % 7))
FROM generate_series(1, 300) AS n;

SELECT ingest('view', '{"page": "/"}');

-- +goose Down
DELETE FROM events;
