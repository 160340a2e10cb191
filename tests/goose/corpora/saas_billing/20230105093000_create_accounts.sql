-- +goose Up
-- Accounts of the billing service; one per customer organisation.
CREATE TABLE accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE,
    email text NOT NULL, -- the billing contact; not unique across accounts
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE accounts IS 'customer organisations; one row per signed contract';

-- +goose Down
DROP TABLE accounts;
