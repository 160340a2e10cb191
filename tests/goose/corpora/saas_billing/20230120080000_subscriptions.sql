-- +goose Up
CREATE TYPE subscription_status AS ENUM ('trialing', 'active', 'past_due', 'canceled');

CREATE TABLE subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    plan_code text NOT NULL REFERENCES plans (code),
    status subscription_status NOT NULL DEFAULT 'trialing',
    started_on date NOT NULL,
    canceled_on date,
    CHECK (canceled_on IS NULL OR canceled_on >= started_on)
);

CREATE INDEX subscriptions_account_idx ON subscriptions (account_id);

-- +goose Down
DROP TABLE subscriptions;
DROP TYPE subscription_status;
