-- +goose Up
-- +goose StatementBegin
CREATE PROCEDURE archive_events(older_than interval)
LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM events WHERE received_at < now() - older_than RETURNING *
    )
    INSERT INTO events_archive SELECT *, now() FROM moved;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE archive_events(interval);
