-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION expire_sessions() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    removed integer;
BEGIN
    EXECUTE 'DELETE FROM sessions WHERE expires_at < $1' USING now();
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION expire_sessions() FROM PUBLIC;

-- +goose Down
DROP FUNCTION expire_sessions();
