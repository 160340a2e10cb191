-- +goose Up
-- The API's migrations reference Supabase's auth.users. A self-hosted PostgreSQL has no
-- Supabase, so this gives it the minimum of that schema, as the migrator this project
-- replaced did before its first migration (same version, so databases it prepared skip
-- this file). Where an auth.users table already exists (Supabase, or an earlier run), the
-- whole auth schema is left exactly as it is.
-- +goose StatementBegin
DO $migration$
BEGIN
    IF to_regclass('auth.users') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE SCHEMA IF NOT EXISTS auth;
    -- Roles belong to the whole server: another database may have created it already.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    CREATE TABLE auth.users (
        id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email text NOT NULL
    );
    -- Like Supabase's: the user id of the request's JWT claims, NULL outside a request.
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
        AS $uid$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $uid$;
    GRANT USAGE ON SCHEMA auth TO authenticated;
    GRANT EXECUTE ON FUNCTION auth.uid() TO authenticated;
END
$migration$;
-- +goose StatementEnd

-- +goose Down
-- Deliberately empty: auth may hold Supabase's users or data written since. Rolling this
-- version back forgets the version only; drop the schema by hand if it must go.
