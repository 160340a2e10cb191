"""Migrations under the application's traffic: a concurrent index build waits for older
transactions instead of being cut short, an INVALID index is never recorded as built, and a
migration blocked by a lock keeps the application's queries waiting for one short attempt at
a time (bench/lock_stall.py measures how long)."""

from __future__ import annotations

import time

import psycopg
import pytest

from migrator import Failure, MigrationFailed, Migrator, TableName
from migrator.safety import Safety
from tests.support import MigrationDir, query, versions, wait_until
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import started_migrator

INDEX_STATE = (
    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " WHERE i.indrelid = 't'::regclass ORDER BY 1"
)


def test_a_concurrent_index_build_waits_for_an_older_transaction_longer_than_lock_timeout(
    dsn: str, migrations: MigrationDir
) -> None:
    """CREATE INDEX CONCURRENTLY waits for every older transaction in the database, on any table."""
    query(dsn, "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 100); CREATE TABLE other (n int)")
    migrations.add(
        "00001_index.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
    )
    with psycopg.connect(dsn) as report:
        # A report that has been reading another table for a while, under one snapshot.
        report.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        report.execute("SELECT count(*) FROM other")
        with started_migrator("up", "--db-lock-timeout", "100ms", dsn=dsn, directory=migrations.path) as process:
            wait_until(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'"
                " AND wait_event_type = 'Lock' AND datname = current_database()",
                dsn,
            )
            time.sleep(1)  # ten lock_timeouts: a build under it would have been cancelled by now
            assert process.poll() is None
            report.rollback()
            _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert query(dsn, INDEX_STATE) == [("t_a", True)]
    assert versions(dsn) == [0, 1]


def test_only_the_concurrent_build_runs_without_lock_timeout(dsn: str, migrations: MigrationDir) -> None:
    """The statements before and after it keep theirs: the ALTER after it gives up on a lock
    held elsewhere, while the build waited out a report's snapshot."""
    query(dsn, "CREATE TABLE t (a int); CREATE TABLE other (n int); CREATE TABLE busy (id int)")
    migrations.add(
        "00001_mixed.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE n (id int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n"
        "ALTER TABLE busy ADD COLUMN extra int;\n",
    )
    with psycopg.connect(dsn) as report, psycopg.connect(dsn) as holder:
        report.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        report.execute("SELECT count(*) FROM other")
        holder.execute("SELECT count(*) FROM busy")  # ACCESS SHARE on busy until it ends
        with started_migrator("up", "--db-lock-timeout", "100ms", dsn=dsn, directory=migrations.path) as process:
            wait_until(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'"
                " AND wait_event_type = 'Lock' AND datname = current_database()",
                dsn,
            )
            time.sleep(1)  # ten lock_timeouts
            assert process.poll() is None
            report.rollback()
            _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (
        1,
        "migrator: error: 00001_mixed.sql (up): statement 3 (line 5) failed in a NO TRANSACTION migration: ERROR:"
        " canceling statement due to lock timeout (SQLSTATE 55P03); statements 1 (line 3), 2 (line 4) ran and were"
        " NOT rolled back; version 1 was not recorded. Repair by hand, then rerun\n",
    )
    assert query(dsn, INDEX_STATE) == [("t_a", True)]


def test_an_invalid_index_left_by_a_concurrent_build_is_named_and_never_recorded_as_built(
    dsn: str, migrations: MigrationDir
) -> None:
    query(dsn, "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1)")
    unique = "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE UNIQUE INDEX CONCURRENTLY {}t_a_key ON t (a);\n"
    migrations.add("00001_unique.sql", unique.format(""))
    failed = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (failed.returncode, failed.stderr) == (
        1,
        "migrator: error: 00001_unique.sql (up): statement 1 (line 3) failed in a NO TRANSACTION migration: ERROR:"
        ' could not create unique index "t_a_key" (SQLSTATE 23505) DETAIL: Key (a)=(1) is duplicated.; no statement'
        " of it had run; INVALID index(es) public.t_a_key remain from a concurrent build that did not finish:"
        " DROP INDEX CONCURRENTLY public.t_a_key; version 1 was not recorded. Repair by hand, then rerun\n",
    )
    # The rerun the usual advice gives (IF NOT EXISTS) takes the INVALID index for a built one.
    query(dsn, "DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")
    migrations.add("00001_unique.sql", unique.format("IF NOT EXISTS "))
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (refused.returncode, refused.stderr) == (
        1,
        "migrator: error: 00001_unique.sql (up): all 1 statement(s) ran, but INVALID index(es) public.t_a_key"
        " remain from a concurrent build that did not finish: DROP INDEX CONCURRENTLY public.t_a_key; then run"
        " `up` again. Version 1 was not recorded\n",
    )
    assert versions(dsn) == [0]
    query(dsn, "DROP INDEX CONCURRENTLY t_a_key")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, INDEX_STATE) == [("t_a_key", True)]
    assert versions(dsn) == [0, 1]


def test_every_invalid_index_a_file_s_builds_would_take_for_built_is_named(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, "CREATE TABLE t (a int, b int); INSERT INTO t VALUES (1, 1), (1, 1)")
    for column in "ab":
        with pytest.raises(psycopg.errors.UniqueViolation):
            query(dsn, f"CREATE UNIQUE INDEX CONCURRENTLY t_{column}_key ON t ({column})")
    query(dsn, "DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")
    migrations.add(
        "00001_unique.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a_key ON t (a);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_b_key ON t (b);\n",
    )
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (refused.returncode, refused.stderr) == (
        1,
        "migrator: error: 00001_unique.sql (up): all 2 statement(s) ran, but INVALID index(es) public.t_a_key,"
        " public.t_b_key remain from a concurrent build that did not finish: DROP INDEX CONCURRENTLY public.t_a_key;"
        " DROP INDEX CONCURRENTLY public.t_b_key; then run `up` again. Version 1 was not recorded\n",
    )
    assert versions(dsn) == [0]
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, TableName.parse("_migrations")).up(lock_wait=5)
    assert failed.value.failure == Failure(
        "00001_unique.sql",
        "up",
        None,
        None,
        "INVALID index(es) public.t_a_key, public.t_b_key remain from a concurrent build that did not finish:"
        " DROP INDEX CONCURRENTLY public.t_a_key; DROP INDEX CONCURRENTLY public.t_b_key",
        False,
    )


def test_a_build_that_fails_after_one_that_finished_names_only_the_invalid_index(
    dsn: str, migrations: MigrationDir
) -> None:
    query(dsn, "CREATE TABLE t (a int, b int); INSERT INTO t VALUES (1, 1), (1, 2)")
    migrations.add(
        "00001_two.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE UNIQUE INDEX CONCURRENTLY t_b_key ON t (b);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n",
    )
    failed = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (failed.returncode, failed.stderr) == (
        1,
        "migrator: error: 00001_two.sql (up): statement 2 (line 4) failed in a NO TRANSACTION migration: ERROR:"
        ' could not create unique index "t_a_key" (SQLSTATE 23505) DETAIL: Key (a)=(1) is duplicated.; statement 1'
        " (line 3) ran and was NOT rolled back; INVALID index(es) public.t_a_key remain from a concurrent build that"
        " did not finish: DROP INDEX CONCURRENTLY public.t_a_key; version 1 was not recorded. Repair by hand, then"
        " rerun\n",
    )
    assert query(dsn, INDEX_STATE) == [("t_a_key", False), ("t_b_key", True)]


def test_a_reindex_that_did_not_finish_is_found_by_the_copy_it_left(dsn: str, migrations: MigrationDir) -> None:
    """REINDEX CONCURRENTLY builds <name>_ccnew beside the index, swaps them and drops the old
    one, by then named <name>_ccold; cancelled while it waits to drop it, that stays INVALID."""
    query(dsn, "CREATE TABLE t (a int); CREATE INDEX t_a ON t (a)")
    migrations.add(
        "00001_reindex.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nREINDEX (CONCURRENTLY) INDEX t_a;\n",
    )
    with psycopg.connect(dsn) as report:
        report.execute("SELECT count(*) FROM t")
        failed = run_cli("up", "--statement-timeout", "300ms", dsn=dsn, directory=migrations.path)
        report.rollback()
    assert failed.returncode == 1
    assert failed.stderr.endswith(
        "; no statement of it had run; INVALID index(es) public.t_a_ccold remain from a concurrent build that did not"
        " finish: DROP INDEX CONCURRENTLY public.t_a_ccold; version 1 was not recorded. Repair by hand, then rerun\n"
    ), failed.stderr
    assert query(dsn, INDEX_STATE) == [("t_a", True), ("t_a_ccold", False)]


def test_a_blocked_migration_holds_the_application_up_for_one_short_attempt_at_a_time(
    dsn: str, migrations: MigrationDir
) -> None:
    """With the defaults, an application query that gives up after 2s of waiting for a lock
    always gets through while a migration waits for the same table (5s attempts stalled it)."""
    query(dsn, "CREATE TABLE busy (id int); INSERT INTO busy VALUES (1)")
    migrations.add("00001_alter.sql", "-- +goose Up\nALTER TABLE busy ADD COLUMN extra int;\n")
    with psycopg.connect(dsn) as report, psycopg.connect(dsn, autocommit=True) as app:
        report.execute("SELECT count(*) FROM busy")  # ACCESS SHARE until it ends: the ALTER must wait
        with started_migrator("up", dsn=dsn, directory=migrations.path) as process:
            app.execute("SET lock_timeout = '2s'")
            waiting = (
                "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock'"
                " AND relation = 'busy'::regclass"
            )
            for _ in range(3):
                wait_until(waiting, dsn)
                assert app.execute("SELECT id FROM busy").fetchall() == [(1,)]
            report.rollback()
            _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert versions(dsn) == [0, 1]


def test_the_pauses_of_a_blocked_file_double_up_to_their_cap() -> None:
    safety = Safety()
    caps = [safety.backoff_cap(retry) for retry in range(1, safety.lock_retries + 1)]
    assert caps[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert set(caps[4:]) == {5.0}
