-- +goose Up
BEGIN;
ALTER TABLE accounts ADD COLUMN default_plan text REFERENCES plans (code);
UPDATE accounts SET default_plan = 'free' WHERE default_plan IS NULL;
COMMIT;

-- +goose Down
BEGIN;
ALTER TABLE accounts DROP COLUMN default_plan;
COMMIT;
