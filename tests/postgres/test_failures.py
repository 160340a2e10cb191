"""Bad input and failures: a clear one-line error, the contract's exit code, nothing half done."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest
from psycopg import conninfo

from migrator.pg_reasons import pg_reason
from tests.support import ADVISORY_LOCKS_HERE, MigrationDir, query, tables, versions
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import started_migrator

GOOD = "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n"
FAILS_AT_THREE = """-- +goose Up
CREATE TABLE b (id int PRIMARY KEY);
INSERT INTO b VALUES (1);

INSERT INTO b VALUES (1);
-- +goose Down
DROP TABLE b;
"""


def error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {stderr!r}"
    return lines[0]


# A run budget puts its check before each statement of a file sent at once: still named.
WITH_AND_WITHOUT_A_BUDGET = pytest.mark.parametrize("options", [[], ["--run-timeout", "1h"]], ids=["", "budget"])


@WITH_AND_WITHOUT_A_BUDGET
def test_failing_statement_rolls_back_its_file_only(dsn: str, migrations: MigrationDir, options: list[str]) -> None:
    migrations.add("00001_a.sql", GOOD)
    migrations.add("00002_b.sql", FAILS_AT_THREE)
    migrations.add("00003_c.sql", "-- +goose Up\nCREATE TABLE c (id int);\n")
    result = run_cli("up", *options, dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    message = error_line(result.stderr)
    assert "00002_b.sql (up): statement 3 (line 5) failed" in message
    assert "duplicate key value" in message
    assert "23505" in message
    assert "nothing of this file was applied" in message
    assert result.stdout.startswith("OK   00001_a.sql")
    assert versions(dsn) == [0, 1]
    assert tables(dsn) == {"_migrations", "_migrations_ledger", "_migrations_runs", "a"}


@WITH_AND_WITHOUT_A_BUDGET
def test_a_statement_only_the_server_cannot_parse_is_named_though_sent_with_the_others(
    dsn: str, migrations: MigrationDir, options: list[str]
) -> None:
    """A file's statements go to the server at once, and the server parses them all before the
    first runs: its syntax error still names the statement it points into."""
    newer = "SELECT JSON_OBJECT('a': 1);"  # PostgreSQL 16's syntax: pglast's grammar reads it
    migrations.add("00001_a.sql", f"-- +goose Up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n{newer}\n")
    result = run_cli("up", *options, dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert error_line(result.stderr) == (
        'migrator: error: 00001_a.sql (up): statement 3 (line 4) failed: ERROR: syntax error at or near ":"'
        " (SQLSTATE 42601); rolled back: nothing of this file was applied and version 1 was not recorded"
    )
    assert tables(dsn) == {"_migrations", "_migrations_ledger", "_migrations_runs"}


def test_no_transaction_failure_names_what_ran(dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_idx.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE n (id int);\nCREATE TABLE m (id int);\n"
        "CREATE INDEX CONCURRENTLY n_missing_idx ON n (missing);\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    message = error_line(result.stderr)
    assert "00001_idx.sql (up): statement 3 (line 5) failed in a NO TRANSACTION migration" in message
    assert "statements 1 (line 3), 2 (line 4) ran and were NOT rolled back" in message
    assert "version 1 was not recorded" in message
    assert {"n", "m"} <= tables(dsn)
    assert versions(dsn) == [0]


def test_parse_error_anywhere_changes_nothing(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", GOOD)
    migrations.add("00002_open.sql", "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 2
    assert error_line(result.stderr) == (
        "migrator: error: 00002_open.sql: '-- +goose StatementBegin' at line 2 has no '-- +goose StatementEnd'"
    )
    assert "a" not in tables(dsn)


def test_file_without_up_is_refused(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_noup.sql", "CREATE TABLE x (id int);\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 2
    assert "00001_noup.sql:1: SQL before the '-- +goose Up' annotation" in error_line(result.stderr)
    validate = run_cli("validate", directory=migrations.path)
    assert validate.returncode == 2
    assert "00001_noup.sql:1" in validate.stderr
    assert tables(dsn) == set()


def test_bad_file_names_and_duplicates(migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", GOOD)
    migrations.add("1_again.sql", GOOD)
    duplicate = run_cli("validate", directory=migrations.path)
    assert duplicate.returncode == 2
    assert "1_again.sql: duplicate version 1" in duplicate.stderr
    (migrations.path / "1_again.sql").unlink()
    migrations.add("create_things.sql", GOOD)
    malformed = run_cli("validate", directory=migrations.path)
    assert malformed.returncode == 2
    assert "create_things.sql: not a migration file name" in malformed.stderr
    (migrations.path / "create_things.sql").unlink()


def test_missing_directory(dsn: str, migrations: MigrationDir) -> None:
    result = run_cli("up", dsn=dsn, directory=migrations.path / "nope")
    assert result.returncode == 2
    assert "migrations directory does not exist" in error_line(result.stderr)


def test_no_dsn_is_a_usage_error(migrations: MigrationDir) -> None:
    result = run_cli("status", directory=migrations.path)
    assert result.returncode == 2
    assert error_line(result.stderr) == (
        "migrator: error: no database: pass --dsn or set POSTGRES_CONNECTION_STRING (or GOOSE_DBSTRING)"
    )
    # The Nomad task's template says why instead (infra/jobs/api.nomad.hcl).
    why = "Nomad variable nomad/jobs/api does not exist: run pulumi up for this stack"
    in_nomad = run_cli("status", directory=migrations.path, env={"MIGRATOR_MISSING_DATABASE": why})
    assert (in_nomad.returncode, error_line(in_nomad.stderr)) == (2, f"migrator: error: no database: {why}")


def test_unreachable_database(migrations: MigrationDir) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://app:hunter2-secret@127.0.0.1:{port}/app"
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    message = error_line(result.stderr)
    assert f"cannot connect to app on 127.0.0.1:{port}" in message
    assert "hunter2" not in result.stderr + result.stdout


def test_wrong_password_is_never_printed(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", GOOD)
    params = conninfo.conninfo_to_dict(dsn)
    wrong = "Wr0ng-Pa55word-7f3a"
    url = f"postgresql://{params['user']}:{wrong}@{params['host']}:{params['port']}/{params['dbname']}"
    for candidate in (url, conninfo.make_conninfo(dsn, password=wrong)):
        result = run_cli("up", dsn=candidate, directory=migrations.path)
        assert result.returncode == 1
        assert "password authentication failed" in error_line(result.stderr)
        assert wrong not in result.stderr + result.stdout
    assert tables(dsn) == set()


def test_malformed_dsn_does_not_echo_the_password(migrations: MigrationDir) -> None:
    result = run_cli("status", dsn="host=127.0.0.1 password=S3cretValue nonsense", directory=migrations.path)
    assert result.returncode == 2
    assert "S3cretValue" not in result.stderr
    assert "cannot be read unambiguously" in result.stderr


def test_connection_dropped_mid_run(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", GOOD)
    migrations.add("00002_slow.sql", "-- +goose Up\nCREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    with (
        psycopg.connect(dsn, autocommit=True) as watcher,
        started_migrator("up", "--dir", str(migrations.path), "--dsn", dsn) as process,
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'migrator' AND query LIKE '%pg_sleep%'"
                " AND datname = current_database()"
            ).fetchone()
            if row:
                watcher.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                break
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert error_line(stderr) == (
        "migrator: error: 00002_slow.sql (up): statement 2 (line 3) failed: the server ended the session (FATAL:"
        " terminating connection due to administrator command (SQLSTATE 57P01)); its transaction ended with it:"
        " nothing of this file was applied and version 2 was not recorded"
    )
    assert versions(dsn) == [0, 1]
    assert "slow" not in tables(dsn)
    assert query(
        dsn,
        ADVISORY_LOCKS_HERE,
    ) == [(0,)]


def test_a_driver_error_without_a_server_message_is_one_line() -> None:
    """A dropped network gives libpq's text (several lines), or nothing at all."""
    lost = psycopg.OperationalError("consuming input failed:\n\tserver closed the connection unexpectedly\n")
    assert pg_reason(lost) == "consuming input failed: server closed the connection unexpectedly"
    assert pg_reason(psycopg.OperationalError("")) == "OperationalError"
