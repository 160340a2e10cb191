-- +goose Up
-- Plans and their prices, seeded in the same block. The block ends with COMMIT: it was
-- written for psql first, and goose commits there and records the version after it.
-- +goose StatementBegin
CREATE TABLE plans (
    code text PRIMARY KEY,
    name text NOT NULL,
    monthly_cents integer NOT NULL CHECK (monthly_cents >= 0)
);
INSERT INTO plans (code, name, monthly_cents) VALUES
    ('free', 'Free', 0),
    ('team', 'Team; billed monthly', 2900),
    ('enterprise', 'Enterprise -- invoiced', 99000);
COMMIT;
-- +goose StatementEnd

-- +goose Down
DROP TABLE plans;
