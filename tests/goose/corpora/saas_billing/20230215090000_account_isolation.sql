-- +goose Up
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;

CREATE POLICY accounts_own_rows ON accounts
    USING (id = nullif(current_setting('app.account_id', true), '')::uuid);

CREATE POLICY subscriptions_own_rows ON subscriptions
    USING (account_id = nullif(current_setting('app.account_id', true), '')::uuid)
    WITH CHECK (account_id = nullif(current_setting('app.account_id', true), '')::uuid);

-- +goose Down
DROP POLICY subscriptions_own_rows ON subscriptions;
DROP POLICY accounts_own_rows ON accounts;
ALTER TABLE subscriptions DISABLE ROW LEVEL SECURITY;
ALTER TABLE accounts DISABLE ROW LEVEL SECURITY;
