"""The real goose beside the migrator: goose's CLI, our goose-library driver
(tests/support/goose_driver, goose's ``Provider`` with its PostgreSQL session lock), what each
says is applied, and schema dumps to compare the databases they leave behind.

Both binaries are built by ``bash .ci/tools`` into ``.tools/bin`` at the version pinned in
``.ci/tools.d/goose.sh``; without them a test skips on a workstation and fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from tests.support import REPO, query, unavailable
from tests.support.migrator_process import run_migrator, started_migrator
from tools import pgserver

TOOLS_BIN = REPO / ".tools" / "bin"
GOOSE_RECIPE = REPO / ".ci" / "tools.d" / "goose.sh"
TABLE = "_migrations"
# goose-provider polls pg_try_advisory_lock every second (goose's minimum; its default is 5s).
LOCK_POLL = ("-lock-poll", "1", "-lock-attempts", "120")


def pinned_goose_version() -> str:
    found = re.search(r"^GOOSE_VERSION=(v\S+)", GOOSE_RECIPE.read_text(), re.MULTILINE)
    assert found, f"{GOOSE_RECIPE} pins no GOOSE_VERSION"
    return found.group(1)


def tool(name: str) -> Path:
    """A binary from .tools/bin (or PATH)."""
    built = TOOLS_BIN / name
    if built.is_file():
        return built
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not built: run `bash .ci/tools`")
    return Path(str(found))


def version_of(filename: str) -> int:
    return int(filename.partition("_")[0])


@dataclass
class Tools:
    """goose's CLI, the goose-library driver and the migrator on one database and directory,
    with the same environment (for ENVSUB)."""

    dsn: str
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    def _environment(self) -> dict[str, str]:
        # No inherited DSN variables: each tool is told its database explicitly.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("GOOSE_", "POSTGRES_"))}
        return {**inherited, **self.env}

    def run(self, command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, capture_output=True, text=True, env=self._environment(), timeout=timeout, check=False
        )

    def _spawn(self, command: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._environment(),
            cwd=REPO,
        )

    def goose_command(self, command: str, *flags: str) -> list[str]:
        """``goose [flags] postgres DSN command``, with the arguments where goose wants them."""
        base = [str(tool("goose")), "-dir", str(self.directory), "-table", TABLE, "-env", "none", "-no-color"]
        return [*base, *flags, "postgres", self.dsn, *command.split()]

    def goose(self, command: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.goose_command(command, *flags))

    def spawn_goose(self, command: str) -> subprocess.Popen[str]:
        """goose's CLI in the background."""
        return self._spawn(self.goose_command(command))

    def library_command(self, *args: str) -> list[str]:
        return [str(tool("goose-provider")), "-dsn", self.dsn, "-dir", str(self.directory), "-table", TABLE, *args]

    def library(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The goose-library driver; ``-json`` output for the tests to read."""
        return self.run(self.library_command("-json", *LOCK_POLL, *args), timeout)

    def spawn_library(self, *args: str) -> subprocess.Popen[str]:
        return self._spawn(self.library_command("-json", *LOCK_POLL, *args))

    def started_migrator(self, *args: str) -> AbstractContextManager[subprocess.Popen[str]]:
        """``python -m migrator`` in the background, on this database and directory."""
        return started_migrator("--table", TABLE, *args, dsn=self.dsn, directory=self.directory, env=self.env)

    def migrator(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_migrator(
            "--table", TABLE, *args, dsn=self.dsn, directory=self.directory, env=self.env, timeout=timeout
        )

    # -- what each says is applied ------------------------------------------------------

    def goose_status(self) -> dict[int, bool]:
        """goose CLI ``status``: each file's version and whether it is applied."""
        result = ok(self.goose("status"))
        found = re.findall(r"^\S+ \S+ +(.+?) +-- (\S+\.(?:sql|go))$", result.stderr, re.MULTILINE)
        assert found, result.stderr
        return {version_of(name): when.strip() != "Pending" for when, name in found}

    def goose_version(self) -> int:
        result = ok(self.goose("version"))
        found = re.search(r"goose: version (\d+)", result.stderr)
        assert found, result.stderr
        return int(found.group(1))

    def library_status(self) -> dict[int, bool]:
        document = json.loads(ok(self.library("status")).stdout)
        return {m["version"]: m["applied"] for m in document["migrations"]}

    def migrator_status(self) -> dict[int, bool]:
        document = json.loads(ok(self.migrator("status", "--json")).stdout)
        return {m["version"]: m["applied"] for m in document["migrations"]}

    def migrator_version(self) -> int:
        result = ok(self.migrator("version"))
        found = re.search(r"version (\d+)", result.stdout)
        assert found, result.stdout
        return int(found.group(1))

    def assert_agree(self) -> list[int]:
        """goose and the migrator report the same files applied and the same version;
        returns the applied versions."""
        goose, ours = self.goose_status(), self.migrator_status()
        assert goose == ours, f"goose: {goose}\nmigrator: {ours}"
        applied = sorted(v for v, done in goose.items() if done)
        assert self.goose_version() == self.migrator_version() == max(applied, default=0)
        return applied


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def schema(dsn: str) -> str:
    """The database's schema as pg_dump writes it, without goose's table and the migrator's
    sidecar tables beside it (``_migrations*``): what the migrations themselves built."""
    bindir = pgserver.find_bindir()
    pg_dump = bindir / "pg_dump" if bindir else shutil.which("pg_dump")
    if pg_dump is None:
        unavailable("pg_dump not found")
    result = subprocess.run(
        [str(pg_dump), "--schema-only", "--no-owner", "--no-privileges", f"--exclude-table={TABLE}*", "--dbname", dsn],
        capture_output=True,
        text=True,
        check=True,
    )
    # Beside the schema: the versions of pg_dump and the server, and psql's \restrict key
    # (random on every dump).
    noise = ("-- Dumped", "\\restrict ", "\\unrestrict ")
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith(noise))


# Columns whose default differs from run to run: not what a migration stored.
_VOLATILE_DEFAULT = re.compile(r"now\(\)|current_timestamp|clock_timestamp\(\)|gen_random_uuid\(\)|random\(\)", re.I)


def data(dsn: str) -> dict[str, list[str]]:
    """Every row of every table the migrations made, in all schemas but the system's and without
    goose's table and the migrator's beside it, sorted, leaving out the columns whose default
    differs from run to run (now(), gen_random_uuid()): what the migrations stored."""
    columns = query(
        dsn,
        "SELECT c.table_schema, c.table_name, c.column_name, coalesce(c.column_default, '')"
        " FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND c.table_name NOT LIKE %s ORDER BY 1, 2, c.ordinal_position",
        (f"{TABLE}%",),
    )
    kept: dict[tuple[str, str], list[str]] = {}
    for schema_name, table, column, default in columns:
        names = kept.setdefault((str(schema_name), str(table)), [])
        if not _VOLATILE_DEFAULT.search(str(default)):
            names.append(str(column))
    found: dict[str, list[str]] = {}
    for (schema_name, table), names in kept.items():
        selected = sql.SQL(", ").join(map(sql.Identifier, names)) if names else sql.SQL("count(*)")
        rows = query(dsn, sql.SQL("SELECT {} FROM {}").format(selected, sql.Identifier(schema_name, table)).as_string())
        found[f"{schema_name}.{table}"] = sorted(map(repr, rows))  # each row as text: one order for any types
    return found


# A corpus written for these tests: every parser feature goose and the migrator must agree
# on. The ENVSUB file reads SETTINGS_SUFFIX (required) and SETTINGS_DEFAULT (defaulted).
CORPUS_ENV = {"SETTINGS_SUFFIX": "eu", "SETTINGS_OWNER": "api team"}
CORPUS = {
    "00001_create_accounts.sql": """\
-- +goose Up
-- accounts of the API
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE, -- one; per person
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE accounts;
""",
    "00002_touch_trigger.sql": """\
-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
ALTER TABLE accounts ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
-- one goose statement holding two commands: goose sends it as one simple query
-- +goose StatementBegin
CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
COMMENT ON DOMAIN email_address IS 'an address; with an at sign';
-- +goose StatementEnd

-- +goose Down
DROP DOMAIN email_address;
DROP TRIGGER accounts_touch ON accounts;
ALTER TABLE accounts DROP COLUMN updated_at;
DROP FUNCTION touch_updated_at();
""",
    "00003_accounts_created_index.sql": """\
-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY accounts_created_idx ON accounts (created_at);

-- +goose Down
DROP INDEX CONCURRENTLY accounts_created_idx;
""",
    "00004_settings.sql": """\
-- +goose Up
-- +goose ENVSUB ON
CREATE TABLE settings_${SETTINGS_SUFFIX} (
    key text PRIMARY KEY,
    value text NOT NULL DEFAULT '${SETTINGS_DEFAULT:-unset}'
);
COMMENT ON TABLE settings_${SETTINGS_SUFFIX} IS 'owned by ${SETTINGS_OWNER}';
-- +goose ENVSUB OFF

-- +goose Down
-- +goose ENVSUB ON
DROP TABLE settings_${SETTINGS_SUFFIX};
-- +goose ENVSUB OFF
""",
    "00005_seed.sql": """\
-- +goose Up
INSERT INTO accounts (email) VALUES ('a@example.com'), ('semi;colon@example.com');
INSERT INTO accounts (email) VALUES ('dash--dash@example.com'); -- a trailing comment
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT count(*) FROM accounts) <> 3 THEN
        RAISE EXCEPTION 'expected 3 accounts; found %', (SELECT count(*) FROM accounts);
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DELETE FROM accounts WHERE email IN ('a@example.com', 'semi;colon@example.com', 'dash--dash@example.com');
""",
    "00006_reserved.sql": """\
-- +goose Up
-- nothing yet: the version is reserved for the audit log

-- +goose Down
""",
    "00007_recent_accounts.sql": """\
-- +goose Up
CREATE VIEW recent_accounts AS
    SELECT id, email FROM accounts
    WHERE created_at > now() - interval '7 days';

-- +goose Down
-- +goose StatementBegin
DROP VIEW recent_accounts;
-- +goose StatementEnd
""",
    "20250101120000_sessions.sql": """\
-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE INDEX CONCURRENTLY sessions_account_idx ON sessions (account_id);

-- +goose Down
DROP TABLE sessions;
""",
}
CORPUS_VERSIONS = sorted(version_of(name) for name in CORPUS)


def write_corpus(directory: Path, names: list[str] | None = None) -> None:
    for name in names if names is not None else CORPUS:
        (directory / name).write_text(CORPUS[name])
