-- +goose Up
-- A new enum value cannot be used in the transaction that adds it: commit first.
ALTER TYPE subscription_status ADD VALUE IF NOT EXISTS 'paused' AFTER 'active';
COMMIT;
ALTER TABLE subscriptions ADD COLUMN paused_until date;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_paused_until
    CHECK (paused_until IS NULL OR status = 'paused');

-- +goose Down
-- PostgreSQL cannot drop an enum value: the column and its check go, the value stays.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_paused_until;
ALTER TABLE subscriptions DROP COLUMN paused_until;
