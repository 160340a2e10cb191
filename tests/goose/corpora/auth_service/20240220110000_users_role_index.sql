-- +goose Up
--  +goose   NO TRANSACTION
CREATE INDEX CONCURRENTLY users_role_idx ON users (role) WHERE role = 'admin';

-- +goose Down
DROP INDEX CONCURRENTLY users_role_idx;
