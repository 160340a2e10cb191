-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION ingest(event_kind text, body jsonb) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO events (kind, payload) VALUES (event_kind, body) RETURNING id INTO new_id;
    RETURN new_id;
EXCEPTION
    WHEN not_null_violation THEN
        RAISE EXCEPTION 'an event needs a kind; got %', body USING ERRCODE = 'invalid_parameter_value';
END;
$fn$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION ingest(text, jsonb);
