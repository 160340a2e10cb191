"""Migrations under the application's traffic: a concurrent index build waits for older
transactions instead of being cut short, and an INVALID index is never recorded as built."""

from __future__ import annotations

import time

import psycopg

from tests.cli_runner import run_cli
from tests.migrator_process import started_migrator
from tests.support import MigrationDir, query, versions, wait_until

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
