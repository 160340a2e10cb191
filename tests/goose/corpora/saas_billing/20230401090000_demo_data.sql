-- +goose Up
INSERT INTO accounts (id, slug, email) VALUES
    ('00000000-0000-4000-8000-000000000001', 'acme', 'billing@acme.example'),
    ('00000000-0000-4000-8000-000000000002', 'globex', 'ap@globex.example');
INSERT INTO subscriptions (account_id, plan_code, status, started_on)
VALUES ('00000000-0000-4000-8000-000000000001', 'team', 'active', '2023-04-01'),
       ('00000000-0000-4000-8000-000000000002', 'free', 'trialing', '2023-04-02');
INSERT INTO invoices (account_id, issued_on, total_cents)
SELECT s.account_id, d::date, 2900
FROM subscriptions s, generate_series('2023-04-01'::date, '2024-02-01'::date, interval '1 month') AS d
WHERE s.plan_code = 'team';

-- +goose Down
DELETE FROM invoices WHERE account_id IN ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002');
DELETE FROM accounts WHERE slug IN ('acme', 'globex');
