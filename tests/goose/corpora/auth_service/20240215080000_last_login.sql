-- +goose Up
ALTER TABLE users ADD COLUMN last_login_at timestamptz;
COMMIT;
-- after the commit, outside any transaction: the index builds without locking writes
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_last_login_idx ON users (last_login_at);

-- +goose Down
DROP INDEX IF EXISTS users_last_login_idx;
ALTER TABLE users DROP COLUMN last_login_at;
