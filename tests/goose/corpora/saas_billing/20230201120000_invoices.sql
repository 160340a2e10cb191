-- +goose Up
CREATE TABLE invoices (
    id bigint GENERATED ALWAYS AS IDENTITY,
    account_id uuid NOT NULL,
    issued_on date NOT NULL,
    total_cents bigint NOT NULL,
    PRIMARY KEY (id, issued_on)
) PARTITION BY RANGE (issued_on);

-- One partition per quarter of 2023, made in a loop.
-- +goose StatementBegin
DO $$
DECLARE
    quarter int;
    first_day date;
BEGIN
    FOR quarter IN 1..4 LOOP
        first_day := make_date(2023, 3 * quarter - 2, 1);
        EXECUTE format(
            'CREATE TABLE invoices_2023_q%s PARTITION OF invoices FOR VALUES FROM (%L) TO (%L)',
            quarter, first_day, first_day + interval '3 months'
        );
    END LOOP;
END
$$;
-- +goose StatementEnd

CREATE TABLE invoices_default PARTITION OF invoices DEFAULT;

-- +goose Down
DROP TABLE invoices;
