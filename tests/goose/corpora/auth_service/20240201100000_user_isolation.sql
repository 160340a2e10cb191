-- +goose Up
SET LOCAL lock_timeout = '3s';
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_self ON users
    USING (id = nullif(current_setting('app.user_id', true), '')::bigint OR current_setting('app.role', true) = 'admin');

-- +goose Down
DROP POLICY users_self ON users;
ALTER TABLE users DISABLE ROW LEVEL SECURITY;
