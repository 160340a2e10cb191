"""The migrator as a library, in process: what each command returns, the events it sends,
and the facts its refusals carry (the command line's text is tested through the CLI)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest

import migrator
from migrator import DurationError, InputError, Migrator, MigratorError, Options, TableName, errors, parse_duration
from migrator.dsn import describe
from migrator.errors import Failure, MigrationFailed, ParseError
from migrator.events import Ahead, DatabaseAhead, Event, InterruptedRunFound, LockRetry, MigrationFinished
from migrator.interruptions import InterruptedRun, interruption_advice
from migrator.ledger_entries import LedgerUnreadable
from migrator.parser import Direction
from migrator.refusals import DriftRefused, InterruptedRunRefused, OutOfOrderRefused, VanishedFile
from migrator.safety import Safety
from tests.support import (
    REPO,
    MigrationDir,
    interrupted_during,
    login_role,
    modules_after,
    query,
    refuse_inserts,
    server_warnings,
    table_file,
    tables,
    versions,
)

GOOSE_TABLE = TableName.parse("_migrations")


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def test_up_returns_every_file_it_ran_and_sends_an_event_for_each(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_nothing.sql", "-- +goose Up\n-- +goose Down\n")
    events: list[Event] = []
    result = Migrator(conn, migrations.path, GOOSE_TABLE, on_event=events.append).up(lock_wait=10)

    assert result.current == 2
    assert [(r.version, r.file, r.direction, r.empty) for r in result.migrations] == [
        (1, "00001_a.sql", Direction.UP, False),
        (2, "00002_nothing.sql", Direction.UP, True),
    ]
    assert [e.result for e in events if isinstance(e, MigrationFinished)] == result.migrations
    assert versions(dsn) == [0, 1, 2]


def test_up_to_and_down_to_return_what_they_ran(conn: psycopg.Connection, migrations: MigrationDir) -> None:
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", table_file(name))
    migrator = Migrator(conn, migrations.path, GOOSE_TABLE)
    assert [r.version for r in migrator.up(lock_wait=10).migrations] == [1, 2, 3]
    assert [r.version for r in migrator.down(lock_wait=10).migrations] == [3]  # the latest only
    down = migrator.down(target=0, lock_wait=10)
    assert [(r.version, r.direction) for r in down.migrations] == [(2, Direction.DOWN), (1, Direction.DOWN)]
    assert down.current == 0


def test_redo_expands_envsub_with_the_environment_it_was_given(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_named.sql",
        "-- +goose ENVSUB ON\n-- +goose Up\nCREATE TABLE ${TABLE_NAME} (id int);\n"
        "-- +goose Down\nDROP TABLE ${TABLE_NAME};\n",
    )
    migrator = Migrator(conn, migrations.path, GOOSE_TABLE, env={"TABLE_NAME": "given"})
    migrator.up(lock_wait=10)
    redone = migrator.redo(lock_wait=10)
    assert [(r.version, r.direction) for r in redone.migrations] == [(1, Direction.DOWN), (1, Direction.UP)]
    assert "given" in tables(dsn)


def test_a_failure_says_where_the_file_stopped(conn: psycopg.Connection, dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "-- +goose Up\nCREATE TABLE x (id int);\nINSERT INTO missing VALUES (1);\n")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert failed.value.failure == Failure(
        "00001_bad.sql", "up", 2, 3, 'ERROR: relation "missing" does not exist (SQLSTATE 42P01)', True
    )

    migrations.add("00001_bad.sql", table_file("x"))
    refuse_inserts(dsn, "_migrations", "NEW.version_id = 1", "no version 1")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    # The version row is no statement of the file: neither a number nor a line.
    assert failed.value.failure == Failure(
        "00001_bad.sql", "up", None, None, "ERROR: no version 1 (SQLSTATE P0001)", True
    )
    assert "x" not in tables(dsn)


class TrackingWriteFailure(NamedTuple):
    table: str
    condition: str
    reason: str
    message: str
    statements_stay: bool


@pytest.mark.parametrize(
    "case",
    [
        # The ledger entry goes first: nothing of the file runs.
        TrackingWriteFailure(
            "_migrations_ledger", "NEW.state = 'applying'", "ledger refused", "preparing the run failed", False
        ),
        # The version row goes last: the statements stay applied.
        TrackingWriteFailure(
            "_migrations",
            "NEW.version_id = 2",
            "no version 2",
            "all statements ran but the version row could not be written",
            True,
        ),
    ],
)
def test_a_no_transaction_file_whose_tracking_write_fails_says_what_stays(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, case: TrackingWriteFailure
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)  # creates the ledger
    refuse_inserts(dsn, case.table, case.condition, case.reason)
    migrations.add("00002_nt.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE nt (id int);\n")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    reason = f"ERROR: {case.reason} (SQLSTATE P0001)"
    assert str(failed.value) == f"00002_nt.sql: {case.message}: {reason}"
    rolled_back = not case.statements_stay
    assert failed.value.failure == Failure("00002_nt.sql", "up", None, None, reason, rolled_back)
    assert ("nt" in tables(dsn)) is case.statements_stay
    assert versions(dsn) == [0, 1]


def test_status_refuses_a_ledger_it_may_not_read_unless_told_to_tolerate_it(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    reader = login_role(dsn, "reader", "reader-pw", "GRANT SELECT ON _migrations TO {}")
    with psycopg.connect(reader, autocommit=True) as as_reader:
        migrator = Migrator(as_reader, migrations.path, GOOSE_TABLE)
        with pytest.raises(LedgerUnreadable, match=r"^no privilege to read _migrations_ledger$"):
            migrator.status()
        status = migrator.status(tolerate_unreadable_ledger=True)
    assert status.current == 1
    assert status.ledger_unreadable == (
        "no privilege to read _migrations_ledger: edited files and interrupted runs are not detected"
    )


def test_a_target_below_the_database_without_leave_to_go_down_leaves_it_ahead(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    """An older job version's `migrate-to V` that Nomad starts again (auto-revert, a reschedule)
    must not fail its allocation: like goose's up-to, it leaves what is above V applied."""
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", table_file(name))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)

    events: list[Event] = []
    result = Migrator(conn, migrations.path, GOOSE_TABLE, on_event=events.append).migrate_to(1, lock_wait=10)
    assert (result.current, result.migrations, result.ahead, result.already_at) == (3, [], [2, 3], None)
    assert events == [DatabaseAhead([2, 3], 1, Ahead.DOWN_NOT_ALLOWED)]
    assert versions(dsn) == [0, 1, 2, 3]

    allowed = Migrator(conn, migrations.path, GOOSE_TABLE, options=Options(allow_down=True))
    assert allowed.migrate_to(1, lock_wait=10).current == 1


def test_an_edited_applied_file_is_refused_with_the_file(conn: psycopg.Connection, migrations: MigrationDir) -> None:
    edited = migrations.add("00001_a.sql", table_file("a"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    edited.write_text(table_file("a") + "-- edited\n")
    migrations.add("00002_b.sql", table_file("b"))

    with pytest.raises(DriftRefused) as refused:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert [m.filename for m in refused.value.edited] == ["00001_a.sql"]
    assert refused.value.vanished == []
    assert str(refused.value) == "00001_a.sql was edited after it was applied"


def test_an_edited_file_and_a_vanished_one_are_refused_together(
    conn: psycopg.Connection, migrations: MigrationDir
) -> None:
    edited = migrations.add("00001_a.sql", table_file("a"))
    vanished = migrations.add("00002_b.sql", table_file("b"))
    migrations.add("00003_c.sql", table_file("c"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    edited.write_text(table_file("a") + "-- edited\n")
    vanished.unlink()

    with pytest.raises(DriftRefused) as refused:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert str(refused.value) == (
        "00001_a.sql was edited after it was applied; 00002_b.sql (version 2) was applied but its file is gone"
    )
    assert [m.filename for m in refused.value.edited] == ["00001_a.sql"]
    assert refused.value.vanished == [VanishedFile(2, "00002_b.sql")]


def test_an_older_pending_file_is_refused_with_the_highest_version(
    conn: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add("00003_c.sql", table_file("c"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))

    with pytest.raises(OutOfOrderRefused) as refused:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert [m.version for m in refused.value.missing] == [1, 2]
    assert refused.value.highest == 3
    assert str(refused.value) == (
        "2 pending migration(s) older than the highest applied version 3: 00001_a.sql, 00002_b.sql"
    )


def test_rolling_back_past_an_interrupted_file_is_refused_with_its_entry(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add(
        "00002_half.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE half (id int);\nSELECT 1 / 0;\n"
        "-- +goose Down\nDROP TABLE half;\n",
    )
    with pytest.raises(MigrationFailed):
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert "half" in tables(dsn)

    with pytest.raises(InterruptedRunRefused) as refused:
        Migrator(conn, migrations.path, GOOSE_TABLE).down(lock_wait=10)
    assert refused.value.interrupted == [InterruptedRun(2, "00002_half.sql", Direction.UP, 1, 2)]
    assert str(refused.value).endswith(". Rolling back other files first would leave it half done")
    assert "applying 00002_half.sql (NO TRANSACTION) was interrupted after 1 of 2 statement(s)" in str(refused.value)
    assert versions(dsn) == [0, 1]


def test_a_target_below_the_highest_with_nothing_to_roll_back_rolls_back_nothing(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    """Applied 1, 3, then 2 (out of order): goose's down-to 2 walks back by id and stops at 2."""
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00003_c.sql", table_file("c"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    migrations.add("00002_b.sql", table_file("b"))
    Migrator(conn, migrations.path, GOOSE_TABLE, options=Options(allow_missing=True)).up(lock_wait=10)

    kept = Migrator(conn, migrations.path, GOOSE_TABLE).migrate_to(2, lock_wait=10)
    assert (kept.current, kept.migrations, kept.ahead) == (2, [], [3])
    allowed = Migrator(conn, migrations.path, GOOSE_TABLE, options=Options(allow_down=True))
    result = allowed.migrate_to(2, lock_wait=10)
    assert (result.current, result.migrations, result.ahead) == (2, [], [])
    assert versions(dsn) == [0, 1, 3, 2]


def test_an_interrupted_run_refusal_gives_the_advice_for_every_file() -> None:
    runs = [
        InterruptedRun(2, "00002_a.sql", Direction.UP, 1, 3),
        InterruptedRun(3, "00003_b.sql", Direction.DOWN, 0, 2),
    ]
    assert str(InterruptedRunRefused(runs)) == (
        f"{interruption_advice(runs[0])}; {interruption_advice(runs[1])}."
        " Rolling back other files first would leave it half done"
    )


@pytest.mark.parametrize(
    ("params", "described"),
    [
        ({"host": "db.internal", "hostaddr": "10.0.0.5", "port": "6432", "dbname": "api"}, "api on db.internal:6432"),
        ({"hostaddr": "10.0.0.5", "user": "api"}, "api on 10.0.0.5:5432"),
        ({}, "? on localhost:5432"),
    ],
)
def test_a_database_is_described_without_credentials(params: dict[str, str], described: str) -> None:
    assert describe({**params, "password": "never-shown"}) == described


def test_interruptions_are_described_for_each_direction() -> None:
    applying = InterruptedRun(2, "00002_a.sql", Direction.UP, 1, 3)
    reverting = InterruptedRun(3, "00003_b.sql", Direction.DOWN, 0, 2)
    repair = " make those statements safe to repeat (IF NOT EXISTS, IF EXISTS) or undo them by hand, then run"
    assert interruption_advice(applying) == (
        "applying 00002_a.sql (NO TRANSACTION) was interrupted after 1 of 3 statement(s): statements 1 to 1 ran and"
        f" were not rolled back. `up` runs the file again from its first statement:{repair} `up`"
    )
    assert interruption_advice(reverting) == (
        "rolling back 00003_b.sql (NO TRANSACTION) was interrupted after 0 of 2 statement(s): no statement is known"
        f" to have finished. `down` runs the file again from its first statement:{repair} `down`"
    )


def test_a_parse_error_without_a_file_says_input() -> None:
    assert str(ParseError("unterminated StatementBegin", line=3)) == "<input>:3: unterminated StatementBegin"
    assert str(ParseError("empty")) == "<input>: empty"


def test_migrate_to_the_current_version_reports_it(conn: psycopg.Connection, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    fresh = Migrator(conn, migrations.path, GOOSE_TABLE).migrate_to(0, lock_wait=10)
    assert (fresh.current, fresh.already_at, fresh.migrations) == (0, 0, [])
    Migrator(conn, migrations.path, GOOSE_TABLE).up(target=2, lock_wait=10)
    there = Migrator(conn, migrations.path, GOOSE_TABLE).migrate_to(2, lock_wait=10)
    assert (there.current, there.already_at, there.migrations) == (2, 2, [])


THREE_STATEMENTS = "-- +goose Up\nCREATE TABLE nt (id int);\n{second}\nCREATE TABLE never (id int);\n"


def test_a_no_transaction_file_failing_half_way_says_what_stays(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_nt.sql", "-- +goose NO TRANSACTION\n" + THREE_STATEMENTS.format(second="SELECT 1 / 0;"))
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    reason = "ERROR: division by zero (SQLSTATE 22012)"
    assert failed.value.failure == Failure("00001_nt.sql", "up", 2, 4, reason, False)
    assert str(failed.value) == (
        f"00001_nt.sql (up): statement 2 (line 4) failed in a NO TRANSACTION migration: {reason};"
        " statement 1 (line 3) ran and was NOT rolled back; version 1 was not recorded. Repair by hand, then rerun"
    )
    assert tables(dsn) & {"nt", "never"} == {"nt"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "-- +goose NO TRANSACTION\n",
            "00001_x.sql (up): statement 2 (line 4) was interrupted in a NO TRANSACTION migration;"
            " statement 1 (line 3) ran and was NOT rolled back; version 1 was not recorded."
            " `status` shows it; repair by hand, then rerun",
        ),
        (
            "",
            "00001_x.sql (up): statement 2 (line 3) was interrupted; rolled back: nothing of this file was applied"
            " and version 1 was not recorded",
        ),
    ],
    ids=["no transaction", "in a transaction"],
)
def test_ctrl_c_says_what_of_the_file_stays(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, header: str, message: str
) -> None:
    migrations.add("00001_x.sql", header + THREE_STATEMENTS.format(second="SELECT pg_sleep(30);"))
    stopped = interrupted_during(
        dsn, "%SELECT pg_sleep(30);%", lambda: Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    )
    assert str(stopped) == message
    line, rolled_back = (4, False) if header else (3, True)
    assert stopped.failure == Failure("00001_x.sql", "up", 2, line, "interrupted", rolled_back)
    assert tables(dsn) & {"nt", "never"} == (set() if rolled_back else {"nt"})
    assert Migrator(conn, migrations.path, GOOSE_TABLE).status().current == 0  # the session is usable


def test_a_no_transaction_file_failing_at_once_says_nothing_ran(
    conn: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add("00001_nt.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1 / 0;\nCREATE TABLE nt (id int);\n")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert "; no statement of it had run; version 1 was not " in str(failed.value)


def test_a_file_a_lock_blocked_is_reported_rolled_back(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_alter.sql", "-- +goose Up\nCREATE TABLE fresh (id int);\nALTER TABLE busy ADD x int;\n")
    query(dsn, "CREATE TABLE busy (id int)")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS SHARE MODE")
        with pytest.raises(MigrationFailed) as failed:
            Migrator(conn, migrations.path, GOOSE_TABLE, safety=Safety(lock_timeout=0.05, lock_retries=0)).up(
                lock_wait=10
            )
    assert failed.value.failure == Failure(
        "00001_alter.sql", "up", 2, 3, "ERROR: canceling statement due to lock timeout (SQLSTATE 55P03)", True
    )
    assert "fresh" not in tables(dsn)


def test_a_lock_on_the_version_table_blocks_the_previous_files_closing_sent_with_the_next_file(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    """The first file's version rows travel with the second file: blocked there, the first file
    runs again on its own and is retried as when its closing goes alone; the second follows."""
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)  # goose's table, nothing else
    two = "-- +goose Up\nCREATE TABLE {0}1 (id int);\nCREATE TABLE {0}2 (id int);\n"
    migrations.add("00001_a.sql", two.format("a"))
    migrations.add("00002_b.sql", two.format("b"))
    events: list[Event] = []
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE _migrations IN SHARE MODE")  # reads pass, the version row waits

        def release_on_retry(event: Event) -> None:
            events.append(event)
            if isinstance(event, LockRetry):
                blocker.rollback()

        safety = Safety(lock_timeout=0.2, lock_retries=2, first_backoff=0.01)
        migrator = Migrator(conn, migrations.path, GOOSE_TABLE, safety=safety, on_event=release_on_retry)
        result = migrator.up(lock_wait=10)
    retries = [(e.file, e.statement, e.attempt) for e in events if isinstance(e, LockRetry)]
    assert retries == [("00001_a.sql", 0, 1)]
    finished = [e.result.file for e in events if isinstance(e, MigrationFinished)]
    assert finished == [r.file for r in result.migrations] == ["00001_a.sql", "00002_b.sql"]
    assert versions(dsn) == [0, 1, 2]
    assert {"a1", "a2", "b1", "b2"} <= tables(dsn)


@pytest.mark.parametrize("header", ["", "-- +goose NO TRANSACTION\n"])
def test_the_session_keeps_its_own_timeouts_after_a_run(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, header: str
) -> None:
    """A library caller's connection outlives the run: the migration's timeouts stay with it."""
    migrations.add("00001_a.sql", header + table_file("a"))
    timeouts = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
    before = conn.execute(timeouts).fetchone()
    Migrator(conn, migrations.path, GOOSE_TABLE, safety=Safety(lock_timeout=0.25, statement_timeout=60)).up(
        lock_wait=10
    )
    assert conn.execute(timeouts).fetchone() == before
    assert "a" in tables(dsn)


def test_a_run_gives_the_server_nothing_to_warn_about(conn: psycopg.Connection, migrations: MigrationDir) -> None:
    """BEGIN and the timeouts travel once per file, with its first statement: sent again, or
    COMMIT without them, PostgreSQL warns of a transaction already (or not) in progress, into
    its log at the default log_min_messages, once per statement of every migration."""
    migrations.add(
        "00001_ab.sql",
        "-- +goose Up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n"
        "-- +goose Down\nDROP TABLE b;\nDROP TABLE a;\n",
    )
    migrations.add("00002_nothing.sql", "-- +goose Up\n-- +goose Down\n")
    warnings = server_warnings(conn)
    migrator = Migrator(conn, migrations.path, GOOSE_TABLE)
    assert migrator.up(lock_wait=10).current == 2
    assert migrator.down(target=0, lock_wait=10).current == 0
    assert warnings == []


def test_a_failed_run_names_the_files_it_applied_before_the_failure(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    migrations.add("00003_bad.sql", "-- +goose Up\nSELECT 1 / 0;\n-- +goose Down\nSELECT 1;\n")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert [(r.version, r.file, r.direction, r.empty) for r in failed.value.applied] == [
        (1, "00001_a.sql", Direction.UP, False),
        (2, "00002_b.sql", Direction.UP, False),
    ]
    assert versions(dsn) == [0, 1, 2]

    # The next run fails at its first file: it applied nothing before it.
    with pytest.raises(MigrationFailed) as again:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    assert again.value.applied == []


def test_a_failed_rollback_names_the_files_it_rolled_back_before_it(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 1 / 0;\n")
    migrations.add("00003_c.sql", table_file("c"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE).down(reset=True, lock_wait=10)
    assert [(r.version, r.file, r.direction) for r in failed.value.applied] == [(3, "00003_c.sql", Direction.DOWN)]
    assert failed.value.failure == Failure(
        "00002_b.sql", "down", 1, 4, "ERROR: division by zero (SQLSTATE 22012)", True
    )
    assert versions(dsn) == [0, 1, 2]


def test_a_rerun_of_an_interrupted_file_is_announced_with_its_public_facts(
    conn: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_half.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE IF NOT EXISTS half (id int);\nSELECT 1 / 0;\n",
    )
    with pytest.raises(MigrationFailed):
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    events: list[Event] = []
    with pytest.raises(MigrationFailed):
        Migrator(conn, migrations.path, GOOSE_TABLE, on_event=events.append).up(lock_wait=10)
    assert events == [InterruptedRunFound(InterruptedRun(1, "00001_half.sql", Direction.UP, 1, 2), rerun=True)]


def test_a_lock_retry_names_the_file_the_statement_and_its_line(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_alter.sql", "-- +goose Up\nCREATE TABLE fresh (id int);\n\nALTER TABLE busy ADD x int;\n")
    query(dsn, "CREATE TABLE busy (id int)")
    retries: list[LockRetry] = []
    safety = Safety(lock_timeout=0.05, lock_retries=1, first_backoff=0.01, max_backoff=0.01)
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS SHARE MODE")
        migrator = Migrator(
            conn,
            migrations.path,
            GOOSE_TABLE,
            safety=safety,
            on_event=lambda e: retries.append(e) if isinstance(e, LockRetry) else None,
        )
        with pytest.raises(MigrationFailed):
            migrator.up(lock_wait=10)
    [retry] = retries
    assert (retry.version, retry.file, retry.direction, retry.statement, retry.line) == (
        1,
        "00001_alter.sql",
        Direction.UP,
        2,
        4,
    )
    assert (retry.attempt, retry.attempts) == (1, 2)
    assert 0 <= retry.backoff <= 0.01
    assert retry.where == "00001_alter.sql (up): statement 2 (line 4)"
    assert replace(retry, statement=0, line=None).where == "00001_alter.sql (up): recording the version"


# -- the public API: migrator/__init__.py -----------------------------------------------


def public_objects() -> dict[str, object]:
    return {name: getattr(migrator, name) for name in migrator.__all__}


def test_every_public_name_is_the_object_its_module_defines() -> None:
    assert sorted(migrator.__all__) == sorted([*migrator._EXPORTS, "__version__"])
    for name, where in migrator._EXPORTS.items():
        module, _, attribute = where.partition(":")
        assert getattr(migrator, name) is getattr(importlib.import_module(module), attribute or name), name


def test_the_type_checker_is_shown_every_public_name_where_it_is_looked_up() -> None:
    """The ``if TYPE_CHECKING:`` imports, which mypy and IDEs read, say what the lookup table says."""
    tree = ast.parse((REPO / "migrator" / "__init__.py").read_text())
    [guard] = [node for node in tree.body if isinstance(node, ast.If)]
    shown: dict[str, str] = {}
    for node in guard.body:
        assert isinstance(node, ast.ImportFrom)
        assert node.module is not None
        for alias in node.names:
            shown[alias.asname or alias.name] = f"{node.module}:{alias.name}" if alias.asname else node.module
    assert shown == migrator._EXPORTS


def test_no_public_name_is_also_the_name_of_a_submodule() -> None:
    """Importing ``migrator.lint`` sets the package's ``lint`` to the module: a public name
    that is a submodule's would change meaning once anything imports that submodule."""
    submodules = {info.name for info in pkgutil.iter_modules(migrator.__path__)}
    assert submodules & set(migrator.__all__) == set()


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'migrator' has no attribute 'Provider'$"):
        migrator.Provider  # noqa: B018


def test_importing_the_package_loads_no_driver_and_no_parser() -> None:
    """``python -m migrator --version`` must start fast: the package's names load on first use,
    though ``dir(migrator)`` lists them all before (as an IDE's completion asks)."""
    modules = modules_after("import migrator; assert set(migrator.__all__) <= set(dir(migrator))")
    assert [m for m in modules if m.split(".")[0] in ("psycopg", "pglast", "psycopg_c", "psycopg_binary")] == []
    assert [m for m in modules if m.startswith("migrator")] == ["migrator"]


def referenced_classes(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for argument in typing.get_args(hint):
        yield from referenced_classes(argument)


def signatures(value: object) -> Iterator[tuple[str, object]]:
    """Each annotated thing a public name shows a caller: a class's fields, its public methods'
    and properties' signatures; a function's signature. Not constructors: a dataclass's repeats
    its fields, and an error is built by the library and caught by the caller, who reads the
    facts its class declares."""
    if isinstance(value, type):
        yield "", value
        for name, member in vars(value).items():
            # Under mutation testing mutmut adds its copies of each method (xǁClassǁname__mutmut_3).
            if not name.startswith("_") and "__mutmut_" not in name:
                function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if inspect.isfunction(function):
                    yield f".{name}()", function
    elif inspect.isfunction(value):
        yield "()", value


def test_every_public_name_shows_only_public_types() -> None:
    """Fields, parameters and return types of the public names, resolved against the public
    names alone: a result, event or error that carried an internal type would name it here."""
    public = public_objects()
    classes = [value for value in public.values() if isinstance(value, type)]
    # psycopg's sql module is imported for type checking only (table_name.py stays driver-free).
    namespace = {"sql": psycopg.sql, **public}
    internal = {
        f"{name}{where}: {used.__module__}.{used.__name__}"
        for name, value in public.items()
        for where, annotated in signatures(value)
        for hint in typing.get_type_hints(annotated, localns=namespace).values()
        for used in referenced_classes(hint)
        if used.__module__.startswith("migrator") and used not in classes
    }
    assert internal == set()


def test_an_error_declares_the_facts_it_carries() -> None:
    public = public_objects()
    raised = ("MigrationFailed", "DriftRefused", "InterruptedRunRefused", "OutOfOrderRefused", "ParseError")
    facts = {name: typing.get_type_hints(public[name], localns=public) for name in raised}
    assert facts["MigrationFailed"] == {"failure": migrator.Failure | None, "applied": list[migrator.MigrationResult]}
    assert facts["DriftRefused"] == {"edited": list[migrator.Migration], "vanished": list[migrator.VanishedFile]}
    assert facts["InterruptedRunRefused"] == {"interrupted": list[migrator.InterruptedRun]}
    assert facts["OutOfOrderRefused"] == {"missing": list[migrator.Migration], "highest": int}
    assert facts["ParseError"] == {"path": Path | None, "line": int | None, "reason": str}
    assert (MigrationFailed("stopped").failure, MigrationFailed("stopped").applied) == (None, [])


def exception_classes() -> dict[str, type]:
    """Every exception class a module of the migrator defines, but for those private to a module."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(migrator.__path__, prefix="migrator."):
        if info.name == "migrator.__main__":  # runs the command line
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            defined_here = isinstance(value, type) and value.__module__ == module.__name__
            if defined_here and issubclass(value, BaseException) and not name.startswith("_"):
                found[name] = value
    return found


def drawn_tree(docstring: str) -> dict[str, str | None]:
    """Each class of the tree errors.py draws, and the class drawn as its parent."""
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for found in re.finditer(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?(\w+)(?: |$)", docstring, flags=re.MULTILINE):
        depth = len(found[1]) // 4 + (1 if path else 0)
        path[depth:] = [found[2]]
        parents[found[2]] = path[-2] if depth else None
    return parents


def test_every_exception_the_library_defines_is_a_migrator_error_drawn_in_the_tree() -> None:
    classes = exception_classes()
    assert {name for name, cls in classes.items() if not issubclass(cls, MigratorError)} == set()
    drawn = drawn_tree(errors.__doc__ or "")
    assert {name: cls.__bases__[0].__name__ for name, cls in classes.items()} == {
        name: parent or "Exception" for name, parent in drawn.items()
    }
    public = {name for name, value in public_objects().items() if isinstance(value, type)}
    # One is caught inside the parser (it reaches callers as a ParseError), one is the command line's.
    assert {name for name in classes if name not in public} == {"SubstitutionError", "UsageError"}


def test_a_duration_that_is_not_one_is_bad_input_and_a_value_error() -> None:
    with pytest.raises(DurationError) as refused:
        parse_duration("5 parsecs")
    assert isinstance(refused.value, InputError)
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == "invalid duration '5 parsecs': write it like 500ms, 2s, 90s, 15m or 1h"
