-- +goose Up
CREATE VIEW monthly_revenue AS
SELECT date_trunc('month', issued_on)::date AS month, sum(total_cents) AS cents, count(*) AS invoices
FROM invoices
GROUP BY 1;

-- +goose Down
DROP VIEW monthly_revenue;
