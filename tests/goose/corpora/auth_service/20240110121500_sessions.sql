-- +goose Up
CREATE TABLE sessions (
    token uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL DEFAULT now() + interval '30 days'
);

-- +goose Down
DROP TABLE sessions;
