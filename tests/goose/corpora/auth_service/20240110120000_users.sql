-- +goose Up
CREATE TYPE user_role AS ENUM ('member', 'admin');

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    role user_role NOT NULL DEFAULT 'member',
    password_hash text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- +goose Down
DROP TABLE users;
DROP TYPE user_role;
