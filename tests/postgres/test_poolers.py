"""Through PgBouncer (Debian's 1.18) in session and in transaction mode, as teams reach their
database through Supabase's pooler: nothing applied twice, nothing left behind on a server
connection the pooler hands to the next client, no prepared statement relied on."""

from __future__ import annotations

import re
from contextlib import ExitStack

import psycopg
import pytest

from infra.migration_status import applied_versions
from migrator import Migrator, TableName
from migrator.dsn import connect
from migrator.errors import MigrationFailed
from migrator.store import table_exists
from tests.support import ADVISORY_LOCKS_HERE, MigrationDir, NoLock, query, table_file, tables, versions
from tests.support.cli_runner import run_cli
from tests.support.goose_interop import Tools
from tests.support.migrator_process import started_migrator

ACCOUNTS = (
    "CREATE TABLE accounts (id int PRIMARY KEY, cents bigint NOT NULL); INSERT INTO accounts VALUES (1, 250), (2, 7)"
)
# Amounts in cents, from amounts in whole units: applied twice, every balance is 100 times too high.
TO_CENTS = (
    "-- +goose Up\nUPDATE accounts SET cents = cents * 100;\n-- +goose Down\nUPDATE accounts SET cents = cents / 100;\n"
)
REFUSED = (
    r"migrator: error: the database is reached through a pooler in transaction mode: (?:a second connection was"
    r" given this connection's server session \(backend pid (?P<pid>[0-9]+)\)|this connection's transactions ran"
    r" in two server sessions \(backend pid [0-9]+, then [0-9]+\))\. goose's advisory lock would exclude nothing"
    r" there and a migration could be applied twice, so nothing was run\. Connect directly, or through the pooler"
    r" in session mode \(Supabase: port 5432 instead of 6543\)"
)


def test_migrators_started_together_behind_a_transaction_pooler_apply_nothing(
    dsn: str, transaction_pooled: str, migrations: MigrationDir
) -> None:
    """The advisory lock would land on whichever server connection the pooler picks: each of
    them is refused before it takes it, however their turns interleave (three rounds)."""
    query(dsn, ACCOUNTS)
    migrations.add("00001_to_cents.sql", TO_CENTS)
    for _ in range(3):
        with ExitStack() as running:
            processes = [
                running.enter_context(started_migrator("up", dsn=transaction_pooled, directory=migrations.path))
                for _ in range(3)
            ]
            outcomes = [(process.wait(timeout=120), *process.communicate()) for process in processes]
        assert [(code, out) for code, out, _ in outcomes] == [(2, "")] * 3, outcomes
        for _, _, err in outcomes:
            assert re.fullmatch(REFUSED, err.strip()), err
        assert query(dsn, "SELECT id, cents FROM accounts ORDER BY id") == [(1, 250), (2, 7)]
        assert tables(dsn) == {"accounts"}
        assert query(dsn, ADVISORY_LOCKS_HERE) == [(0,)]


def test_the_refusal_names_the_server_session_two_connections_shared(
    dsn: str, transaction_pooled: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    refused = run_cli("up", dsn=transaction_pooled, directory=migrations.path)
    assert (refused.returncode, refused.stdout) == (2, "")
    found = re.fullmatch(REFUSED, refused.stderr.strip())
    assert found, refused.stderr
    assert found["pid"], refused.stderr
    # A real server session, which the pooler keeps for its next client.
    assert query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (int(found["pid"]),)) == [(1,)]
    assert tables(dsn) == set()


def test_migrators_started_together_behind_a_session_pooler_apply_each_file_once(
    dsn: str, session_pooled: str, migrations: MigrationDir
) -> None:
    query(dsn, ACCOUNTS)
    migrations.add("00001_to_cents.sql", TO_CENTS)
    migrations.add("00002_b.sql", table_file("b"))
    with ExitStack() as running:
        processes = [
            running.enter_context(started_migrator("up", dsn=session_pooled, directory=migrations.path))
            for _ in range(3)
        ]
        outcomes = [(process.wait(timeout=120), *process.communicate()) for process in processes]
    assert [code for code, _, _ in outcomes] == [0] * 3, [err for _, _, err in outcomes]
    applied = sorted(line.split()[1] for _, out, _ in outcomes for line in out.splitlines() if line.startswith("OK"))
    assert applied == ["00001_to_cents.sql", "00002_b.sql"]
    assert query(dsn, "SELECT id, cents FROM accounts ORDER BY id") == [(1, 25000), (2, 700)]
    assert versions(dsn) == [0, 1, 2]


@pytest.mark.parametrize("command", ["status", "plan", "history", "version", "validate"])
def test_reading_commands_leave_nothing_on_a_pooled_server_connection(
    dsn: str, transaction_pooled: str, migrations: MigrationDir, command: str
) -> None:
    """The pooler hands the server connection a read used to the next client: its writes, and
    a later migrator's, must work there."""
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up-to", "1", dsn=dsn, directory=migrations.path).returncode == 0
    query(dsn, "CREATE TABLE app (n int)")
    result = run_cli(command, dsn=transaction_pooled, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(transaction_pooled, autocommit=True, prepare_threshold=None) as app:
        app.execute("INSERT INTO app VALUES (1)")
        assert app.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    assert query(dsn, "SELECT n FROM app") == [(1,)]


def test_the_pulumi_program_s_reads_leave_nothing_on_a_pooled_server_connection(
    dsn: str, transaction_pooled: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert applied_versions(transaction_pooled) == ([1], None)
    with psycopg.connect(transaction_pooled, autocommit=True, prepare_threshold=None) as app:
        app.execute("CREATE TABLE app (n int)")
    assert "app" in tables(dsn)


def test_a_read_only_session_is_read_only_in_each_transaction_and_never_for_the_session(dsn: str) -> None:
    with connect(dsn, read_only=True) as conn:
        reads = "SELECT current_setting('transaction_read_only'), current_setting('default_transaction_read_only')"
        assert conn.execute(reads).fetchone() == ("on", "off")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE written (n int)")


def test_no_server_side_prepared_statement_is_relied_on(transaction_pooled: str) -> None:
    """psycopg prepares a query it ran five times, on the server connection that ran it; the
    pooler sends the next one wherever it likes."""
    table = TableName.parse("_migrations")
    with connect(transaction_pooled) as conn, psycopg.connect(transaction_pooled, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1")  # keeps the first server connection busy: conn runs on a second
        for _ in range(8):
            assert table_exists(conn, table) is False
        other.execute("COMMIT")  # the first server connection, released last, goes to conn next
        for _ in range(3):
            assert table_exists(conn, table) is False


# -- the guard in every file's transaction: a lock that excluded nothing applies nothing twice --


def test_a_file_another_session_applied_meanwhile_is_not_applied_again(dsn: str, migrations: MigrationDir) -> None:
    """goose's CLI takes no lock: here it applies the second file while the migrator is between
    its first and second files."""
    query(dsn, ACCOUNTS)
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_to_cents.sql", TO_CENTS)
    goose = Tools(dsn, migrations.path)

    def goose_applies_the_next(event: object) -> None:
        assert goose.goose("up-to 2").returncode == 0

    with connect(dsn) as conn, pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, TableName.parse("_migrations"), on_event=goose_applies_the_next).up(lock_wait=5)
    assert str(failed.value) == (
        "00002_to_cents.sql (up): version 2 was applied meanwhile by another session: the lock did not exclude"
        " it. Nothing of this file ran and version 2 was not recorded again"
    )
    assert failed.value.failure is not None
    assert (failed.value.failure.statement, failed.value.failure.rolled_back) == (None, True)
    assert query(dsn, "SELECT id, cents FROM accounts ORDER BY id") == [(1, 25000), (2, 700)]
    assert versions(dsn) == [0, 1, 2]


def test_a_file_whose_session_does_not_hold_the_lock_runs_nothing(dsn: str, migrations: MigrationDir) -> None:
    """Behind a transaction pooler the run's advisory lock may sit on another server session
    than the one running a file: that file fails before its first statement."""
    query(dsn, ACCOUNTS)
    migrations.add("00001_to_cents.sql", TO_CENTS)
    with psycopg.connect(dsn, autocommit=True) as elsewhere, connect(dsn) as conn:
        elsewhere.execute("SELECT pg_advisory_lock(4097083626)")
        with pytest.raises(MigrationFailed) as failed:
            Migrator(conn, migrations.path, TableName.parse("_migrations"), locker=NoLock()).up(lock_wait=5)
    assert str(failed.value) == (
        "00001_to_cents.sql (up): another session holds goose's advisory lock, so the lock this run holds did not"
        " exclude it (a pooler in transaction mode?). Nothing of this file ran and version 1 was not recorded again"
    )
    assert query(dsn, "SELECT id, cents FROM accounts ORDER BY id") == [(1, 250), (2, 7)]
    assert versions(dsn) == [0]


def test_a_rollback_another_session_did_meanwhile_is_not_done_again(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, ACCOUNTS)
    migrations.add("00001_to_cents.sql", TO_CENTS)
    migrations.add("00002_a.sql", table_file("a"))
    goose = Tools(dsn, migrations.path)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0

    def goose_rolls_back_the_next(event: object) -> None:
        assert goose.goose("down-to 0").returncode == 0

    with connect(dsn) as conn, pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, TableName.parse("_migrations"), on_event=goose_rolls_back_the_next).down(
            target=0, lock_wait=5
        )
    assert str(failed.value) == (
        "00001_to_cents.sql (down): version 1 was rolled back meanwhile by another session: the lock did not"
        " exclude it. Nothing of this file ran and version 1 was not removed again"
    )
    assert query(dsn, "SELECT id, cents FROM accounts ORDER BY id") == [(1, 250), (2, 7)]
