"""The whole run's budget (``--run-timeout``): each statement's ``statement_timeout`` is the
smaller of its own and what is left, and nothing starts once the budget is spent. Against a
real PostgreSQL; where the moment the budget runs out must fall between two statements, the
applier's clock is moved forward instead of waiting for it, or, for a file sent at once (whose
budget the server keeps), a statement outlives its timeout."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from migrator import Migrator, Safety, TableName, applying
from migrator.errors import Failure, MigrationFailed
from migrator.events import Event, MigrationFinished
from tests.support import MigrationDir, query, table_file, tables, versions, wait_until
from tests.support.cli_runner import run_cli

GOOSE_TABLE = TableName.parse("_migrations")
CANCELED = "ERROR: canceling statement due to statement timeout (SQLSTATE 57014)"


@dataclass
class MovableClock:
    """``time`` as the applier sees it: its monotonic clock can be moved forward, and a sleep
    moves it instead of waiting."""

    offset: float = 0.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def perf_counter(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    moved = MovableClock()
    monkeypatch.setattr(applying, "time", moved)
    return moved


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def test_a_statement_gets_only_what_is_left_of_the_run(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_slow.sql", "-- +goose Up\nSELECT pg_sleep(1);\nSELECT pg_sleep(30);\n")
    result = run_cli("up", "--run-timeout", "3s", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"migrator: error: 00001_slow.sql (up): statement 2 (line 3) failed: {CANCELED} (the statement had what"
        " was left of the run's budget, --run-timeout 3s); rolled back: nothing of this file was applied and"
        " version 1 was not recorded"
    )
    assert versions(dsn) == [0]


def test_a_statement_whose_own_timeout_is_shorter_keeps_it(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_slow.sql", "-- +goose Up\nSELECT pg_sleep(30);\n")
    env = {"MIGRATOR_RUN_TIMEOUT": "1h"}
    result = run_cli("up", "--statement-timeout", "500ms", dsn=dsn, directory=migrations.path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"migrator: error: 00001_slow.sql (up): statement 1 (line 2) failed: {CANCELED}; rolled back: nothing of"
        " this file was applied and version 1 was not recorded"
    )


def test_a_statement_sent_at_once_whose_own_timeout_is_shorter_keeps_it(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_slow.sql", "-- +goose Up\nSELECT 1;\nSELECT pg_sleep(30);\n")
    env = {"MIGRATOR_RUN_TIMEOUT": "1h"}
    result = run_cli("up", "--statement-timeout", "500ms", dsn=dsn, directory=migrations.path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"migrator: error: 00001_slow.sql (up): statement 2 (line 3) failed: {CANCELED}; rolled back: nothing of"
        " this file was applied and version 1 was not recorded"
    )


def test_a_no_transaction_statement_gets_what_is_left_with_the_progress_before_it(
    dsn: str, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_slow.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT pg_sleep(1);\nSELECT pg_sleep(30);\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path, env={"MIGRATOR_RUN_TIMEOUT": "3s"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "migrator: error: 00001_slow.sql (up): statement 2 (line 4) failed in a NO TRANSACTION migration:"
        f" {CANCELED} (the statement had what was left of the run's budget, --run-timeout 3s);"
        " statement 1 (line 3) ran and was NOT rolled back; version 1 was not recorded. Repair by hand, then rerun"
    )
    assert query(dsn, "SELECT statements_done, statements_total FROM _migrations_ledger") == [(1, 2)]
    assert query(dsn, "SHOW statement_timeout") == [("0",)], "the migrator's own session only"


def test_no_file_starts_once_the_budget_is_spent(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, clock: MovableClock
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))

    def spend_it(event: Event) -> None:
        if isinstance(event, MigrationFinished):
            clock.offset += 61

    migrator = Migrator(conn, migrations.path, GOOSE_TABLE, run_timeout=60, on_event=spend_it)
    with pytest.raises(MigrationFailed) as failed:
        migrator.up(lock_wait=10)
    spent = "the run's budget (--run-timeout 60s) was spent"
    assert str(failed.value) == (
        f"00002_b.sql (up): statement 1 (line 2) was not started: {spent}; nothing of this file was applied"
        " and version 2 was not recorded"
    )
    assert failed.value.failure == Failure("00002_b.sql", "up", 1, 2, spent, True)
    assert versions(dsn) == [0, 1]
    assert "b" not in tables(dsn)


def spend_during(dsn: str, clock: MovableClock, sql: str) -> threading.Thread:
    """Moves the applier's clock past the budget while ``sql`` runs in the test's database."""

    def watch() -> None:
        wait_until(
            f"SELECT count(*) > 0 FROM pg_stat_activity WHERE strpos(query, '{sql}') > 0 AND state = 'active'"
            " AND datname = current_database() AND pid <> pg_backend_pid()",
            dsn,
        )
        clock.offset += 3600

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


# A statement of two commands: the file goes one statement at a time, each with its budget.
TWO_COMMANDS = (
    "-- +goose StatementBegin\nCREATE TABLE two (id int); CREATE TABLE three (id int);\n-- +goose StatementEnd"
)


def test_a_file_stops_before_its_next_statement_once_the_budget_is_spent(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, clock: MovableClock
) -> None:
    migrations.add("00001_two.sql", f"-- +goose Up\n{TWO_COMMANDS}\nSELECT pg_sleep(1.5);\nSELECT 2;\n")
    watcher = spend_during(dsn, clock, "pg_sleep(1.5)")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE, run_timeout=60).up(lock_wait=10)
    watcher.join()
    assert str(failed.value) == (
        "00001_two.sql (up): statement 3 (line 6) was not started: the run's budget (--run-timeout 60s) was spent;"
        " rolled back: nothing of this file was applied and version 1 was not recorded"
    )
    assert "two" not in tables(dsn)
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE, "its transaction was rolled back"


# A statement that outlives its statement_timeout: it catches the cancel and ends normally, so the
# statement after it is the one that finds the budget spent.
OUTLIVES_ITS_TIMEOUT = (
    "-- +goose StatementBegin\nDO $$ BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END $$;\n"
    "-- +goose StatementEnd"
)


def test_a_file_sent_at_once_stops_where_the_server_finds_the_budget_spent(dsn: str, migrations: MigrationDir) -> None:
    """The server works out what is left before each statement of a file sent at once: the
    statement after one that ran to the end of the budget is not started."""
    file = f"-- +goose Up\nCREATE TABLE three (id int);\n{OUTLIVES_ITS_TIMEOUT}\nSELECT 3;\n"
    migrations.add("00001_three.sql", file)
    started = time.monotonic()
    result = run_cli("up", "--run-timeout", "2s", dsn=dsn, directory=migrations.path)
    assert time.monotonic() - started < 25, "the budget, not the statement's own 3 h, ended its sleep"
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "migrator: error: 00001_three.sql (up): statement 3 (line 6) was not started: the run's budget"
        " (--run-timeout 2s) was spent; rolled back: nothing of this file was applied and version 1 was not recorded"
    )
    assert versions(dsn) == [0]
    assert "three" not in tables(dsn)


def test_a_no_transaction_file_stops_before_its_next_statement_and_records_how_far_it_got(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, clock: MovableClock
) -> None:
    migrations.add(
        "00001_nt.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE nt (id int);\nSELECT pg_sleep(1.5);\nSELECT 3;\n",
    )
    watcher = spend_during(dsn, clock, "pg_sleep(1.5)")
    with pytest.raises(MigrationFailed) as failed:
        Migrator(conn, migrations.path, GOOSE_TABLE, run_timeout=60).up(lock_wait=10)
    watcher.join()
    spent = "the run's budget (--run-timeout 60s) was spent"
    assert str(failed.value) == (
        f"00001_nt.sql (up): statement 3 (line 5) was not started: {spent}; statements 1 (line 3), 2 (line 4)"
        " ran and were NOT rolled back; version 1 was not recorded. `status` shows it; rerun to finish it"
    )
    assert failed.value.failure == Failure("00001_nt.sql", "up", 3, 5, spent, False)
    assert query(dsn, "SELECT statements_done, statements_total FROM _migrations_ledger") == [(2, 3)]
    assert "nt" in tables(dsn)


def test_lock_retries_wait_no_longer_than_the_budget(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each pause drawn at its longest: the cap doubles from first_backoff (safety.backoff_cap).
    monkeypatch.setattr(random, "uniform", lambda _low, high: high)
    query(dsn, "CREATE TABLE busy (id int)")
    migrations.add("00001_busy.sql", "-- +goose Up\nALTER TABLE busy ADD COLUMN x int;\n")
    safety = Safety(lock_timeout=0.05, lock_retries=10, first_backoff=1, max_backoff=30)
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(MigrationFailed) as failed:
            Migrator(conn, migrations.path, GOOSE_TABLE, safety=safety, run_timeout=5).up(lock_wait=10)
    assert str(failed.value) == (
        "00001_busy.sql (up): statement 1 (line 2) was not started: the run's budget (--run-timeout 5s) was spent;"
        " nothing of this file was applied and version 1 was not recorded"
    )
    assert clock.slept[:2] == [1, 2], "the pauses double while there is time"
    assert len(clock.slept) == 3
    assert 0 < clock.slept[2] < 2, "the last backoff ends with the budget, not after it"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("forever", "invalid duration 'forever': write it like 500ms, 2s, 90s, 15m or 1h"),
        ("0ms", "duration '0ms' is under 1ms: PostgreSQL would take it as no limit at all"),
    ],
)
def test_a_bad_run_timeout_is_refused_before_anything_runs(
    dsn: str, migrations: MigrationDir, value: str, message: str
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    result = run_cli("up", "--run-timeout", value, dsn=dsn, directory=migrations.path)
    assert result.returncode == 2
    assert result.stderr == f"migrator: error: --run-timeout: {message}\n"
    assert tables(dsn) == set()
