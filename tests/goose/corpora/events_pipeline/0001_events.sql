-- +goose Up
-- Raw events, one list partition per kind the pipeline knows.
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, kind)
) PARTITION BY LIST (kind);

CREATE TABLE events_click PARTITION OF events FOR VALUES IN ('click');
CREATE TABLE events_view PARTITION OF events FOR VALUES IN ('view');
CREATE TABLE events_other PARTITION OF events DEFAULT;

-- +goose Down
DROP TABLE events;
