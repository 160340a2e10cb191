"""Lock-safe DDL against a real PostgreSQL: each file runs under lock_timeout and
statement_timeout, a statement blocked by a lock is retried with pauses that double ("full
jitter"), then the file is refused naming the lock and what was rolled back. (goose's advisory
lock: test_locking.py; retries under live traffic: test_live_traffic.py; within a run's budget:
test_run_budget.py.)"""

from __future__ import annotations

import subprocess
import threading
import time

import psycopg
import pytest

from migrator.api import Migrator
from migrator.dsn import connect
from migrator.errors import MigrationFailed
from migrator.events import LockRetry
from migrator.operator_text import event_line
from migrator.safety import Safety
from migrator.table_name import TableName
from tests.support import MigrationDir, query, table_file, tables, versions, wait_until
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import run_migrator


def test_each_migration_runs_with_lock_and_statement_timeouts(dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_settings.sql",
        "-- +goose Up\nCREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock,"
        " current_setting('statement_timeout') AS statement;\n",
    )
    migrations.add(
        "00002_session.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nINSERT INTO seen SELECT current_setting('lock_timeout'),"
        " current_setting('statement_timeout');\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path, env={"MIGRATOR_STATEMENT_TIMEOUT": "90s"})
    assert result.returncode == 0, result.stderr
    assert query(dsn, "SELECT lock, statement FROM seen") == [("500ms", "90s"), ("500ms", "90s")]
    flagged = run_cli("redo", "--db-lock-timeout", "750ms", dsn=dsn, directory=migrations.path)
    assert flagged.returncode == 0, flagged.stderr
    assert ("750ms", "3h") in query(dsn, "SELECT lock, statement FROM seen")


def test_blocked_migration_retries_then_fails_naming_the_lock(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add(
        "00002_alter.sql", "-- +goose Up\nCREATE TABLE c (id bigint);\nALTER TABLE a ADD COLUMN note text;\n"
    )
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE a IN ACCESS SHARE MODE")  # an open transaction reading a
        result = run_cli("up", "--db-lock-timeout", "200ms", "--lock-retries", "2", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert result.stdout.count("blocked by a lock (attempt") == 2
    error = result.stderr.strip()
    # PostgreSQL names no relation when a table lock times out.
    assert "00002_alter.sql (up): statement 2 (line 3) was blocked by a lock: it waited longer than" in error
    assert "lock_timeout (0.2s) 3 time(s)" in error
    assert "nothing of this file was applied" in error
    assert versions(dsn) == [0, 1]
    assert "c" not in tables(dsn)


def test_a_blocked_row_is_named_by_its_relation(dsn: str, migrations: MigrationDir) -> None:
    """A row lock's timeout names the relation, in the error's context line only."""
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE accounts (id int);\nINSERT INTO accounts VALUES (1);\n")
    migrations.add("00002_touch.sql", "-- +goose Up\nUPDATE accounts SET id = 2;\n")
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT * FROM accounts FOR UPDATE")
        result = run_cli("up", "--db-lock-timeout", "100ms", "--lock-retries", "0", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "migrator: error: 00002_touch.sql (up): statement 1 (line 2) was blocked by a lock on accounts:"
        " it waited longer than lock_timeout (0.1s) 1 time(s). Rolled back: nothing of this file was applied."
        " Find the blocking sessions with pg_blocking_pids(), then rerun"
    )
    assert versions(dsn) == [0, 1]


def test_blocked_migration_succeeds_once_the_lock_is_released(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_alter.sql", "-- +goose Up\nALTER TABLE a ADD COLUMN note text;\n")
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    results: list[subprocess.CompletedProcess[str]] = []
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE a IN ACCESS SHARE MODE")
        # A process, not run_cli: its signal handler can only be installed in the main thread.
        migrator = threading.Thread(
            target=lambda: results.append(
                run_migrator("up", "--db-lock-timeout", "300ms", dsn=dsn, directory=migrations.path)
            )
        )
        migrator.start()
        # Once the ALTER waits behind the lock, hold on past one lock_timeout, then let go.
        wait_until(
            "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE NOT l.granted AND a.application_name = 'migrator' AND a.datname = current_database()",
            dsn,
        )
        time.sleep(0.6)
        holder.rollback()
    migrator.join()
    [result] = results
    assert result.returncode == 0, result.stderr
    assert "blocked by a lock (attempt 1 of 16)" in result.stdout
    assert versions(dsn) == [0, 1, 2]


def test_lock_retries_back_off_doubling(dsn: str, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pause is drawn at random up to a cap that doubles ("full jitter"): here half of it."""
    drawn: list[tuple[float, float]] = []

    def half_of_the_cap(low: float, high: float) -> float:
        drawn.append((low, high))
        return high / 2

    monkeypatch.setattr("migrator.safety.random.uniform", half_of_the_cap)
    query(dsn, "CREATE TABLE busy (id int)")
    migrations.add("00001_alter.sql", "-- +goose Up\nALTER TABLE busy ADD COLUMN extra int;\n")
    retries: list[LockRetry] = []
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with connect(dsn) as conn:
            safety = Safety(lock_timeout=0.05, lock_retries=3, first_backoff=0.05, max_backoff=1)
            migrator = Migrator(
                conn,
                migrations.path,
                TableName.parse("_migrations"),
                on_event=lambda event: retries.append(event) if isinstance(event, LockRetry) else None,
                safety=safety,
            )
            with pytest.raises(MigrationFailed, match="4 time"):
                migrator.up(lock_wait=5)
        blocker.rollback()
    waits = [event_line(retry).rsplit("retrying in ", 1)[1] for retry in retries]
    assert waits == ["25.00ms", "50.00ms", "100.00ms"]
    assert drawn == [(0, 0.05), (0, 0.1), (0, 0.2)]


def test_migrator_lock_retries_from_the_environment(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, "CREATE TABLE busy (id int)")
    migrations.add("00001_alter.sql", "-- +goose Up\nALTER TABLE busy ADD COLUMN extra int;\n")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        env = {"MIGRATOR_LOCK_RETRIES": "0", "MIGRATOR_DB_LOCK_TIMEOUT": "100ms"}
        result = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
        blocker.rollback()
    assert result.returncode == 1
    assert "lock_timeout (0.1s) 1 time(s)" in result.stderr
