-- +goose Up
BEGIN;
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    action text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
-- +goose StatementBegin
CREATE FUNCTION log_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (user_id, action) VALUES (NEW.id, 'role: ' || OLD.role || ' -> ' || NEW.role);
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER users_role_change AFTER UPDATE OF role ON users
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role) EXECUTE FUNCTION log_role_change();
COMMIT;

-- +goose Down
DROP TRIGGER users_role_change ON users;
DROP FUNCTION log_role_change();
DROP TABLE audit_log;
