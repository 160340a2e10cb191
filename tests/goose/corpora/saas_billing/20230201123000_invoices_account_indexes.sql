-- +goose NO TRANSACTION
-- +goose Up
-- A partitioned table takes no concurrent index: build one per partition, then attach.
CREATE INDEX invoices_account_idx ON ONLY invoices (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_2023_q1_account_idx ON invoices_2023_q1 (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_2023_q2_account_idx ON invoices_2023_q2 (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_2023_q3_account_idx ON invoices_2023_q3 (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_2023_q4_account_idx ON invoices_2023_q4 (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_default_account_idx ON invoices_default (account_id);
ALTER INDEX invoices_account_idx ATTACH PARTITION invoices_2023_q1_account_idx;
ALTER INDEX invoices_account_idx ATTACH PARTITION invoices_2023_q2_account_idx;
ALTER INDEX invoices_account_idx ATTACH PARTITION invoices_2023_q3_account_idx;
ALTER INDEX invoices_account_idx ATTACH PARTITION invoices_2023_q4_account_idx;
ALTER INDEX invoices_account_idx ATTACH PARTITION invoices_default_account_idx;

-- +goose Down
DROP INDEX IF EXISTS invoices_account_idx;
