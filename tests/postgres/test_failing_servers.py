"""Failing servers and networks, a hot standby, and what a file sets for its session: every
message true, nothing left open on the server, nothing carried into the next file."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from migrator import Failure, Interrupted, Migrator, TableName
from migrator.dsn import connect
from migrator.errors import MigrationFailed
from migrator.history import RunRecorder
from tests.support import (
    MigrationDir,
    NoLock,
    query,
    server_role,
    table_file,
    tables,
    unavailable,
    versions,
    wait_until,
)
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import started_migrator
from tests.support.partition import Partition
from tools import pgserver

MIGRATOR_IDLE_IN_TRANSACTION = (
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'migrator'"
    " AND state = 'idle in transaction' AND datname = current_database()"
)


def history(dsn: str, directory: MigrationDir) -> list[dict[str, object]]:
    shown = run_cli("history", "--json", dsn=dsn, directory=directory.path)
    assert shown.returncode == 0, shown.stderr
    runs: list[dict[str, object]] = json.loads(shown.stdout)["runs"]
    return runs


# -- a dead network behind a pooler -----------------------------------------------------------


LOST_MID_FILE = (
    "the file's COMMIT was never sent, so nothing of it will remain and version 1 was not recorded: the server"
    " rolls its transaction back once it notices, at the latest 15s after the statement it is running ends"
    " (idle_in_transaction_session_timeout)"
)
LOST_WITH_THE_COMMIT = (
    "it ended while the file's COMMIT was on its way: whether this file was applied and version 1 recorded is"
    " unknown until `status` shows it"
)


@pytest.mark.parametrize(
    "case",
    [
        # A statement of two commands goes one at a time: the network fails between statements.
        (
            "-- +goose StatementBegin\nSELECT 'the network fails here'; SELECT 1;\n-- +goose StatementEnd\n",
            b"the network fails here",
            "statement 2 (line 4)",
            LOST_MID_FILE,
        ),
        # Statements sent at once arrive whole or not at all: the network fails with the COMMIT.
        ("SELECT 'sent at once';\n", b"00001_note.sql", "recording the version", LOST_WITH_THE_COMMIT),
    ],
    ids=["one at a time", "at once"],
)
def test_a_dead_network_behind_a_pooler_ends_the_transaction_on_the_server(
    dsn: str, session_pooled: str, migrations: MigrationDir, case: tuple[str, bytes, str, str]
) -> None:
    """The pooler keeps the server session of a client it cannot hear from: the file's own
    idle_in_transaction_session_timeout ends its transaction, and the lock on the table, on
    the server; the migrator says what it knows, never a rollback it did not see."""
    second, cut_on, where, told = case
    query(dsn, "CREATE TABLE accounts (id int); INSERT INTO accounts VALUES (1)")
    migrations.add("00001_note.sql", f"-- +goose Up\nALTER TABLE accounts ADD COLUMN note text;\n{second}")
    pooler = conninfo.conninfo_to_dict(session_pooled)
    network = Partition(str(pooler["host"]), int(str(pooler["port"])), cut_on)
    with network, started_migrator("up", dsn=network.dsn(session_pooled), directory=migrations.path) as process:
        wait_until(MIGRATOR_IDLE_IN_TRANSACTION, dsn)
        # The server is idle in the file's transaction as soon as it has answered; under load the
        # migrator may still be reading that answer: the network dies once it sent what it cuts on.
        assert network.cut.wait(timeout=60)
        with psycopg.connect(dsn, autocommit=True) as app:
            app.execute("SET lock_timeout = '45s'")  # the file's transaction holds ACCESS EXCLUSIVE
            assert app.execute("SELECT id FROM accounts").fetchall() == [(1,)]
        network.close()
        out, err = process.communicate(timeout=120)
    assert (process.returncode, out) == (1, "")
    assert re.fullmatch(
        re.escape(f"migrator: error: 00001_note.sql (up): {where} failed: the connection to the database")
        + r" was lost \(.+\); "
        + re.escape(told),
        err.strip(),
        re.DOTALL,
    ), err
    assert query(dsn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'") == [(0,)]
    assert versions(dsn) == [0]
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'") == [(1,)]


def test_a_connection_lost_while_the_commit_is_on_its_way_leaves_the_outcome_open(
    dsn: str, migrations: MigrationDir
) -> None:
    """Only the round trip that records a file names it: the network fails as it is sent."""
    migrations.add("00001_cut_here.sql", table_file("a"))
    server = conninfo.conninfo_to_dict(dsn)
    network = Partition(str(server["host"]), int(str(server["port"])), b"00001_cut_here.sql")
    with network, started_migrator("up", dsn=network.dsn(dsn), directory=migrations.path) as process:
        network.cut.wait(timeout=60)
        network.close()
        out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (1, "")
    assert re.fullmatch(
        re.escape("migrator: error: 00001_cut_here.sql (up): recording the version failed: the connection to the")
        + r" database was lost \(.+\); "
        + re.escape(
            "it ended while the file's COMMIT was on its way: whether this file was applied and version 1 recorded"
            " is unknown until `status` shows it"
        ),
        err.strip(),
        re.DOTALL,
    ), err


# -- a server that shuts down mid-run -----------------------------------------------------------


def _served(start: Callable[[], pgserver.Server]) -> Iterator[pgserver.Server]:
    """A server of the test's own while the test runs."""
    try:
        server = start()
    except pgserver.ServerUnavailable as exc:
        unavailable(str(exc))
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_server() -> Iterator[pgserver.Server]:
    """A server the test may shut down."""
    yield from _served(pgserver.start)


SLOW_NO_TX = (
    "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE IF NOT EXISTS first_part (id int);\nSELECT pg_sleep({});\n"
    "CREATE TABLE second_part (id int);\n"
)


def test_a_server_shut_down_mid_run_is_reported_as_such_and_the_run_closed_later(
    own_server: pgserver.Server, migrations: MigrationDir
) -> None:
    """The failure cannot be recorded while the server is down: the next run finds the run
    still 'running', its session gone, and closes it as lost."""
    dsn = conninfo.make_conninfo(own_server.admin_dsn)
    migrations.add("00001_slow.sql", SLOW_NO_TX.format(60))
    with started_migrator("up", dsn=dsn, directory=migrations.path) as process:
        wait_until("SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60);'", dsn)
        own_server.shut_down()
        out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (1, "")
    assert err == (
        "migrator: error: 00001_slow.sql (up): statement 2 (line 4) failed in a NO TRANSACTION migration: the server"
        " ended the session (FATAL: terminating connection due to administrator command (SQLSTATE 57P01)), so it"
        " may or may not have completed; statement 1 (line 3) ran and was NOT rolled back; version 1 was not"
        " recorded. `status` shows the file as interrupted; repair by hand, then rerun\n"
    )
    own_server.start_again()
    [stopped] = history(dsn, migrations)
    assert (stopped["outcome"], stopped["finished_at"]) == ("running", None)
    migrations.add("00001_slow.sql", SLOW_NO_TX.format(0))
    rerun = run_cli("up", dsn=dsn, directory=migrations.path)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[0] == (
        "migrator: applying 00001_slow.sql (NO TRANSACTION) was interrupted after 1 of 3 statement(s);"
        " running it again from the start"
    )
    latest, lost = history(dsn, migrations)
    assert (latest["outcome"], lost["outcome"]) == ("succeeded", "lost")
    assert lost["error"] == (
        f"the run stopped without recording its outcome: its server session (backend pid {stopped['backend_pid']})"
        f" no longer held the migration lock when run {latest['id']} started. Its process was most likely killed"
        " (out of memory?) or lost its connection"
    )
    assert isinstance(lost["finished_at"], str)
    assert {"first_part", "second_part"} <= tables(dsn)


def test_a_killed_run_is_closed_as_lost_by_the_next_and_one_still_holding_the_lock_is_not(
    dsn: str, migrations: MigrationDir
) -> None:
    """The OOM killer's SIGKILL leaves no word. A run whose session holds goose's lock is still
    running: here a session of the test's, recorded as a run by hand, beside a run whose
    locker takes another lock."""
    migrations.add("00001_slow.sql", "-- +goose Up\nSELECT pg_sleep(60);\n")
    with started_migrator("up", dsn=dsn, directory=migrations.path) as process:
        wait_until(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'migrator'"
            " AND query LIKE '%pg_sleep(60)%' AND datname = current_database()",
            dsn,
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    wait_until("SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'migrator'", dsn)
    [killed] = history(dsn, migrations)
    assert (killed["outcome"], killed["finished_at"]) == ("running", None)
    assert isinstance(killed["backend_pid"], int)
    migrations.add("00001_slow.sql", "-- +goose Up\nSELECT pg_sleep(0);\n")
    with psycopg.connect(dsn, autocommit=True) as holder, connect(dsn) as conn:
        holder.execute("INSERT INTO _migrations_runs (command, backend_pid) VALUES ('up', pg_backend_pid())")
        holder.execute("SELECT pg_advisory_lock(4097083626)")
        recorder = RunRecorder(TableName.parse("_migrations"), "up", lambda: connect(dsn), str)
        other_lock = Migrator(conn, migrations.path, TableName.parse("_migrations"), locker=NoLock(), recorder=recorder)
        with pytest.raises(MigrationFailed, match="another session holds goose's advisory lock"):
            other_lock.up(lock_wait=5)
    failed, held, lost = history(dsn, migrations)
    assert (failed["outcome"], held["outcome"], lost["outcome"]) == ("failed", "running", "lost")
    assert lost["id"] == killed["id"]
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert [run["outcome"] for run in history(dsn, migrations)] == ["succeeded", "failed", "lost", "lost"]


# -- a hot standby, a database that may not be written -----------------------------------------


@pytest.fixture
def standby(pg_admin_dsn: str, dsn: str) -> Iterator[str]:
    """The test's database on a hot standby of the test server, as it is when asked for."""
    for server in _served(lambda: pgserver.start_standby(pg_admin_dsn)):
        yield conninfo.make_conninfo(server.admin_dsn, dbname=conninfo.conninfo_to_dict(dsn)["dbname"])


@pytest.mark.parametrize("pending", [True, False])
def test_every_writing_run_on_a_hot_standby_is_refused_first(
    request: pytest.FixtureRequest, dsn: str, migrations: MigrationDir, pending: bool
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    if not pending:
        assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    replica: str = request.getfixturevalue("standby")
    result = run_cli("up", dsn=replica, directory=migrations.path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "migrator: error: the database is a hot standby (pg_is_in_recovery() is true), which cannot be written:"
        " nothing was run. Connect to the primary\n",
    )
    assert run_cli("status", dsn=replica, directory=migrations.path).returncode == 0


def test_a_database_that_may_not_be_written_is_refused_first(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    name = sql.Identifier(str(conninfo.conninfo_to_dict(dsn)["dbname"]))
    query(dsn, sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(name).as_string())
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (result.returncode, result.stderr) == (
        2,
        "migrator: error: the session may not write (transaction_read_only is on: default_transaction_read_only is"
        " set for this database, role or connection): nothing was run. Connect with a session that may write\n",
    )
    assert tables(dsn) == set()


# -- what a file sets for its session ------------------------------------------------------


def test_the_bookkeeping_stays_in_the_run_s_schema_whatever_a_file_sets(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, "CREATE SCHEMA elsewhere")
    migrations.add(
        "00001_elsewhere.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nSET search_path = elsewhere;\nCREATE TABLE moved (id int);\n",
    )
    migrations.add("00002_here.sql", "-- +goose Up\nSET search_path = elsewhere;\nCREATE TABLE also (id int);\n")
    migrations.add("00003_after.sql", table_file("after"))
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1, 2, 3]
    assert query(dsn, "SELECT version_id, state FROM _migrations_ledger ORDER BY 1") == [
        (1, "applied"),
        (2, "applied"),
        (3, "applied"),
    ]
    placed = (
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name IN ('moved', 'also', 'after')"
    )
    assert sorted(query(dsn, placed)) == [("elsewhere", "also"), ("elsewhere", "moved"), ("public", "after")]


def test_a_statement_that_ran_is_said_to_have_run_when_its_progress_cannot_be_recorded(
    dsn: str, migrations: MigrationDir
) -> None:
    """A NO TRANSACTION file that takes a role which may not write the ledger."""
    role = f"limited_{conninfo.conninfo_to_dict(dsn)['dbname']}"
    server_role(dsn, role, "unused")
    migrations.add("00001_role.sql", f"-- +goose NO TRANSACTION\n-- +goose Up\nSET ROLE {role};\nSELECT 1;\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert (result.returncode, result.stderr) == (
        1,
        "migrator: error: 00001_role.sql (up): statement 1 (line 3) ran, but recording that it ran did not: it"
        " failed: ERROR: permission denied for table _migrations_ledger (SQLSTATE 42501); statement 1 (line 3)"
        " ran and was NOT rolled back; version 1 was not recorded. Repair by hand, then rerun\n",
    )


class _InterruptedWhileRecording(psycopg.Connection[tuple[object, ...]]):
    """A session on which Ctrl-C arrives just as a NO TRANSACTION statement's progress is sent."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        if "SET statements_done" in text:
            raise KeyboardInterrupt
        return super().execute(query, params, **kwargs)


def test_an_interruption_while_progress_is_recorded_says_the_statement_ran(dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_no_tx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE a (id bigint);\nSELECT 1;\n"
    )
    with _InterruptedWhileRecording.connect(dsn, autocommit=True) as conn, pytest.raises(Interrupted) as stopped:
        Migrator(conn, migrations.path, TableName.parse("_migrations")).up(lock_wait=5)
    assert str(stopped.value) == (
        "00001_no_tx.sql (up): statement 1 (line 3) ran, but recording that it ran did not: the run was"
        " interrupted; statement 1 (line 3) ran and was NOT rolled back; version 1 was not recorded. Repair by"
        " hand, then rerun"
    )
    assert stopped.value.failure == Failure("00001_no_tx.sql", "up", 1, 3, "the run was interrupted", False)
    assert "a" in tables(dsn)


@pytest.mark.parametrize("header", ["", "-- +goose NO TRANSACTION\n"])
def test_each_file_starts_from_the_run_s_own_session(dsn: str, migrations: MigrationDir, header: str) -> None:
    """A file that turns off foreign keys (session_replication_role), changes the role or the
    search path does so for itself: the next file runs as the run began."""
    query(
        dsn,
        "CREATE SCHEMA other; CREATE TABLE parent (id int PRIMARY KEY);"
        " CREATE TABLE child (parent_id int REFERENCES parent)",
    )
    role = f"owner_{conninfo.conninfo_to_dict(dsn)['dbname']}"
    server_role(dsn, role, "unused", "GRANT CREATE ON SCHEMA public, other TO {}")
    # A NO TRANSACTION file records its progress as whatever role it took: this one may not.
    takes_role = f"SET ROLE {role};\n" if not header else ""
    migrations.add(
        "00001_sets.sql",
        f"{header}-- +goose Up\nSET session_replication_role = replica;\nSET search_path = other;\n{takes_role}",
    )
    migrations.add("00002_made.sql", "-- +goose Up\nCREATE TABLE made (id int);\n")
    migrations.add("00003_orphan.sql", "-- +goose Up\nINSERT INTO child VALUES (999);\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert "00003_orphan.sql (up): statement 1 (line 2) failed: ERROR: insert or update on table" in result.stderr
    assert query(dsn, "SELECT count(*) FROM child") == [(0,)]
    user = conninfo.conninfo_to_dict(dsn)["user"]
    assert query(dsn, "SELECT schemaname, tableowner FROM pg_tables WHERE tablename = 'made'") == [("public", user)]
    assert versions(dsn) == [0, 1, 2]


@pytest.mark.parametrize("identity", ["ROLE", "SESSION AUTHORIZATION"])
def test_a_library_caller_s_own_settings_hold_for_every_file_and_after_the_run(
    dsn: str, migrations: MigrationDir, identity: str
) -> None:
    """The run's session is the one it was given: the caller's search path, settings and role
    (or session authorization), whatever a file changes."""
    role = f"caller_{conninfo.conninfo_to_dict(dsn)['dbname']}"
    server_role(dsn, role, "unused", "GRANT CREATE ON SCHEMA public TO {}", "CREATE SCHEMA app AUTHORIZATION {}")
    migrations.add(
        "00001_a.sql", f"-- +goose Up\nSET search_path = public;\nRESET {identity};\nCREATE TABLE a (id int);\n"
    )
    migrations.add("00002_b.sql", "-- +goose Up\nCREATE TABLE b (id int);\n")
    settings = "SELECT current_setting('search_path'), current_setting('work_mem'), current_user"
    with connect(dsn) as conn:
        conn.execute(f"SET search_path = app, public; SET work_mem = '7MB'; SET {identity} {role}")
        Migrator(conn, migrations.path, TableName.parse("_migrations")).up(lock_wait=5)
        assert conn.execute(settings).fetchone() == ("app, public", "7MB", role)
    owners = "SELECT schemaname, tablename, tableowner FROM pg_tables WHERE tablename IN ('a', 'b', '_migrations')"
    user = conninfo.conninfo_to_dict(dsn)["user"]
    assert sorted(query(dsn, owners)) == [("app", "_migrations", role), ("app", "b", role), ("public", "a", user)]
