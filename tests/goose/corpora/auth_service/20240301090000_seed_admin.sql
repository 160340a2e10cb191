-- +goose Up
-- +goose ENVSUB ON
INSERT INTO users (email, role) VALUES ('${ADMIN_EMAIL:-admin@example.com}', 'admin');
-- +goose ENVSUB OFF
INSERT INTO users (email) SELECT 'user' || n || '@example.com' FROM generate_series(1, 25) AS n;

-- +goose Down
DELETE FROM users WHERE email LIKE '%@example.com';
