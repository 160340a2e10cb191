-- +goose Up
CREATE TYPE event_kind AS ENUM ('click', 'view');
ALTER TYPE event_kind ADD VALUE 'purchase';
COMMIT;
CREATE TABLE events_purchase PARTITION OF events FOR VALUES IN ('purchase');
CREATE TABLE kind_labels (kind event_kind PRIMARY KEY, label text NOT NULL);
INSERT INTO kind_labels VALUES ('click', 'Clicks'), ('view', 'Page views'), ('purchase', 'Purchases');

-- +goose Down
DROP TABLE kind_labels;
DROP TABLE events_purchase;
DROP TYPE event_kind;
