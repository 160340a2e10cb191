"""Contracts other programs rely on, each with its literal value, against a real PostgreSQL.

The values here are written out, never imported from the code under test: goose's lock
key, goose's table, the JSON field names and the environment variables are promises to
goose, to the Pulumi program and to operators, and a test that followed a changed constant
would let the promise break unnoticed.
"""

from __future__ import annotations

import collections
import json
import subprocess
import threading
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import conninfo

from migrator.events import Ahead, MigrationFinished, MigrationResult
from migrator.operator_text import ahead_text, event_line
from migrator.parser import Direction
from migrator.store import Store
from migrator.table_name import TableName
from tests.support import (
    WRITING_FUNCTION,
    MigrationDir,
    login_role,
    query,
    refuse_inserts,
    table_file,
    tables,
    versions,
    wait_until,
)
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import run_migrator

# -- a file's line (goose's lock: test_locking.py; a file blocked by a lock: test_lock_timeouts.py) --


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.25, "250.00ms"), (0.0004, "0.40ms"), (1.0, "1.00s"), (75.5, "75.50s")]
)
def test_a_file_s_line_gives_its_duration_in_milliseconds_under_a_second(seconds: float, shown: str) -> None:
    finished = MigrationFinished(MigrationResult(1, "00001_a.sql", Direction.UP, seconds, False))
    assert event_line(finished) == f"OK   00001_a.sql ({shown})"


@pytest.mark.parametrize(
    ("completed_at", "when"),
    [(None, ""), (datetime(2026, 12, 4, 8, 30, 5, tzinfo=UTC), " at 2026-12-04 08:30:05 UTC")],
)
def test_a_rollback_already_completed_says_when_if_it_is_known(completed_at: datetime | None, when: str) -> None:
    assert ahead_text([3, 4], 2, Ahead.ROLLBACK_DONE, "rb-1", completed_at) == (
        f"rollback rb-1 to version 2 already completed{when}; version(s) 3, 4 were applied since, and a rollback"
        " runs once: nothing rolled back"
    )


# -- applying ----------------------------------------------------------------------------


def test_files_run_in_numeric_version_order(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("2_users.sql", "-- +goose Up\nCREATE TABLE users (id int PRIMARY KEY);\n")
    migrations.add("10_posts.sql", "-- +goose Up\nCREATE TABLE posts (user_id int REFERENCES users);\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 2, 10]


def test_the_version_row_commits_with_the_file_or_not_at_all(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up-to", "1", dsn=dsn, directory=migrations.path).returncode == 0
    refuse_inserts(dsn, "_migrations", "NEW.version_id = 2", "no version 2")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert "no version 2" in result.stderr
    assert "b" not in tables(dsn)
    assert versions(dsn) == [0, 1]


def test_a_permission_error_is_a_failure_not_bad_input(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    weak = login_role(dsn, "no_create", "no-create-pw")
    query(dsn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    result = run_cli("up", dsn=weak, directory=migrations.path)
    assert result.returncode == 1, result.stderr
    assert "permission denied for schema public" in result.stderr


def test_envsub_double_dollar_is_a_literal_dollar(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_env.sql", "-- +goose ENVSUB ON\n-- +goose Up\nCREATE TABLE t AS SELECT '$$${NAME}' AS v;\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path, env={"NAME": "x"})
    assert result.returncode == 0, result.stderr
    assert query(dsn, "SELECT v FROM t") == [("$x",)]


# -- command line and JSON ---------------------------------------------------------------


def test_goose_dbstring_is_the_last_resort(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    result = run_cli("up", directory=migrations.path, env={"GOOSE_DBSTRING": dsn})
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1]
    both = run_cli(
        "status",
        directory=migrations.path,
        env={"GOOSE_DBSTRING": "host=nowhere.invalid", "POSTGRES_CONNECTION_STRING": dsn},
    )
    assert both.returncode == 0, both.stderr


def test_plan_json_field_names(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    document = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert list(document) == ["pending"]
    [entry] = document["pending"]
    assert set(entry) == {"version", "name", "transaction", "transaction_ends", "statements", "lint"}
    assert (entry["version"], entry["name"], entry["transaction"]) == (1, "00001_a.sql", True)
    assert entry["statements"] == ["CREATE TABLE a (id int);"]


def test_status_json_field_names(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    document = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert {"table", "current", "migrations", "pending", "unknown_applied"} <= set(document)
    assert (document["table"], document["current"], document["pending"]) == ("_migrations", 0, [1])
    assert {"version", "name", "applied", "applied_at"} <= set(document["migrations"][0])


@pytest.mark.parametrize("command", ["status", "version", "plan", "lint"])
def test_read_commands_cannot_write_even_through_a_function(dsn: str, migrations: MigrationDir, command: str) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    query(
        dsn,
        WRITING_FUNCTION
        + " CREATE VIEW _migrations AS SELECT 1 AS id, write_audit() AS version_id, true AS is_applied,"
        " now()::timestamp AS tstamp",
    )
    result = run_cli(command, dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert "read-only transaction" in result.stderr
    assert query(dsn, "SELECT count(*) FROM audit") == [(0,)]


def test_percent_encoded_passwords_connect(dsn: str, migrations: MigrationDir) -> None:
    params = conninfo.conninfo_to_dict(login_role(dsn, "encoded_ok", "p@ss/w:rd %"))
    url = f"postgresql://{params['user']}:p%40ss%2Fw%3Ard%20%25@127.0.0.1:{params['port']}/{params['dbname']}"
    result = run_cli("status", dsn=url, directory=migrations.path)
    assert result.returncode == 0, result.stderr


def create_goose_table(conn: psycopg.Connection, name: str) -> None:
    """What goose's Provider runs, in its own transaction, when it finds no table."""
    conn.execute(
        f"CREATE TABLE {name} (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,"
        " version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())"
    )
    conn.execute(f"INSERT INTO {name} (version_id, is_applied) VALUES (0, true)")


def test_every_way_of_losing_the_race_for_goose_s_table_to_goose_is_taken_as_goose_s_win(dsn: str) -> None:
    """goose checks for its table and creates it, table and version-0 row in one transaction,
    outside its lock. Raced from a barrier, PostgreSQL tells the loser "relation already
    exists", "type already exists" or a duplicate catalog key, depending on when the winner
    commits: the migrator must go on with goose's table after each of them."""
    goose_outcomes: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as ours, psycopg.connect(dsn, autocommit=True) as goose:
        for attempt in range(200):
            name = f"race_{attempt}"
            barrier = threading.Barrier(2)

            def create_as_goose(name: str = name, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                if goose.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,):
                    return
                try:
                    with goose.transaction():
                        create_goose_table(goose, name)
                except psycopg.Error:
                    goose_outcomes.append("lost")  # goose retries and finds the migrator's table
                else:
                    goose_outcomes.append("won")

            rival = threading.Thread(target=create_as_goose)
            rival.start()
            barrier.wait()
            try:
                Store(ours, TableName(None, name)).ensure()
            finally:
                rival.join()
            assert query(dsn, f"SELECT version_id, is_applied FROM {name}") == [(0, True)]
    # goose both won and lost races it entered: the two sides did create the table at once.
    assert {"won", "lost"} <= set(goose_outcomes), collections.Counter(goose_outcomes)


def test_a_type_named_like_goose_s_table_is_reported_not_taken_for_the_table(
    dsn: str, migrations: MigrationDir
) -> None:
    """Losing the race to goose and finding a type of that name raise the same errors; only
    the first leaves a table behind to go on with."""
    migrations.add("00001_a.sql", table_file("a"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE _migrations AS ENUM ('applied')")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert 'type "_migrations" already exists' in result.stderr
    assert query(dsn, "SELECT to_regclass('a') IS NULL, to_regclass('_migrations_ledger') IS NULL") == [(True, True)]


def test_a_goose_table_created_meanwhile_is_taken_as_it_is(dsn: str, migrations: MigrationDir) -> None:
    """goose's Provider creates the table outside its lock (status, version): the migrator may
    find no table, then lose the race to create it. It must go on with goose's table."""
    migrations.add("00001_a.sql", table_file("a"))
    results: list[subprocess.CompletedProcess[str]] = []
    with psycopg.connect(dsn) as goose_like:
        create_goose_table(goose_like, "_migrations")
        # A process, not run_cli: its signal handler can only be installed in the main thread.
        migrator = threading.Thread(
            target=lambda: results.append(run_migrator("up", dsn=dsn, directory=migrations.path))
        )
        migrator.start()
        wait_until(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'migrator'"
            " AND wait_event_type = 'Lock' AND datname = current_database()",
            dsn,
        )
        goose_like.commit()
    migrator.join()
    [result] = results
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1]
