-- +goose Up
CREATE SCHEMA IF NOT EXISTS cms;
COMMENT ON SCHEMA cms IS 'the content management tables';

-- +goose Down
DROP SCHEMA cms;
