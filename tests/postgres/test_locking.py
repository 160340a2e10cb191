"""goose's advisory lock: its key, concurrent migrators serialise, a held lock times out with
exit 3 for every writing command, and a failed file releases it. (Against goose itself:
tests/goose/test_goose_interop.py.)"""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest

from migrator.api import Migrator
from migrator.dsn import connect
from migrator.errors import MigrationFailed
from migrator.lock import GOOSE_LOCK_ID, AdvisoryLocker
from migrator.table_name import TableName
from tests.support import ADVISORY_LOCKS_HERE, MigrationDir, query, table_file, tables, versions, wait_until
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import started_migrator

GOOSE_LOCK_KEY = 4097083626  # written out: goose's key is a promise, not a constant to follow


def test_eight_migrators_at_once_record_every_version_once(dsn: str, migrations: MigrationDir) -> None:
    for version in range(1, 11):
        migrations.add(
            f"{version:05d}_t{version}.sql",
            f"-- +goose Up\nCREATE TABLE t{version} (id int);\nSELECT pg_sleep(0.02);\n"
            f"-- +goose Down\nDROP TABLE t{version};\n",
        )
    with ExitStack() as running:
        processes = [
            running.enter_context(started_migrator("--dir", str(migrations.path), "--dsn", dsn, "up")) for _ in range(8)
        ]
        outcomes = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outcomes] == [0] * 8, [err for _, _, err in outcomes]
    assert versions(dsn) == list(range(0, 11))
    applied_lines = [line for _, out, _ in outcomes for line in out.splitlines() if line.startswith("OK")]
    assert len(applied_lines) == 10, "each migration is applied by exactly one process"


def test_held_lock_times_out_with_exit_3_and_changes_nothing(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    with psycopg.connect(dsn, autocommit=True, application_name="goose-holder") as holder:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (GOOSE_LOCK_ID,)).fetchone() == (True,)
        result = run_cli("up", "--lock-timeout", "2s", dsn=dsn, directory=migrations.path)
        assert result.returncode == 3
        assert "not acquired within 2s" in result.stderr
        assert "goose-holder" in result.stderr
        assert tables(dsn) == set()
        # Reads take no lock.
        assert run_cli("status", dsn=dsn, directory=migrations.path).returncode == 0
    with psycopg.connect(dsn, autocommit=True, application_name="") as anonymous:
        anonymous.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_ID,))
        result = run_cli("up", "--lock-timeout", "1s", dsn=dsn, directory=migrations.path)
        assert result.returncode == 3
        pid = anonymous.info.backend_pid
        since = query(
            dsn,
            "SELECT to_char(state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM pg_stat_activity"
            " WHERE pid = %s",
            (pid,),
        )[0][0]
        assert re.fullmatch(
            re.escape(
                f"migrator: error: migration lock (advisory key 4097083626) not acquired within 1s: held by backend"
                f" pid {pid} (application '', user postgres), idle since {since} UTC ("
            )
            + r"[0-9]+"
            + re.escape(
                "s): a session that holds the lock and runs nothing has most likely leaked it; if no migrator or"
                f" goose is running, free it with SELECT pg_terminate_backend({pid}). Nothing was changed"
            ),
            result.stderr.strip(),
        ), result.stderr
    assert run_cli("up", "--lock-timeout", "2s", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(
        dsn,
        ADVISORY_LOCKS_HERE,
    ) == [(0,)]


def test_a_free_lock_is_taken_within_a_short_wait(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    result = run_cli("up", "--lock-timeout", "1s", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1]


def test_a_waiter_keeps_polling_until_the_holder_lets_go(dsn: str, migrations: MigrationDir) -> None:
    """Each poll waits in the server for at most a second: a lock held for longer is still taken."""
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_ID,))
        with started_migrator("up", "--lock-timeout", "30s", dsn=dsn, directory=migrations.path) as waiter:
            wait_until(
                "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'migrator'"
                " AND a.datname = current_database()",
                dsn,
            )
            time.sleep(2.5)  # past two of the waiter's one-second polls
            holder.execute("SELECT pg_advisory_unlock(%s)", (GOOSE_LOCK_ID,))
            _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert versions(dsn) == [0, 1]


def test_a_wait_under_a_second_lasts_as_long_as_asked(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_ID,))
        started = time.monotonic()
        result = run_cli("up", "--lock-timeout", "900ms", dsn=dsn, directory=migrations.path)
        waited = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert waited >= 0.9, f"gave up after {waited:.3f}s of a 900ms wait"


def test_a_waiter_waits_in_the_server_instead_of_polling_in_a_loop(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each poll waits in the server for up to a second: a wait of minutes must not send the
    server thousands of statements."""
    polls: list[object] = []
    execute = psycopg.Connection.execute

    with psycopg.connect(dsn, autocommit=True) as holder, psycopg.connect(dsn, autocommit=True) as waiter:

        def counted(conn: psycopg.Connection, query: Any, *args: Any, **kwargs: Any) -> Any:
            if conn is waiter:
                polls.append(query)
            return execute(conn, query, *args, **kwargs)

        holder.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_ID,))
        letting_go = threading.Timer(2.5, holder.execute, ("SELECT pg_advisory_unlock(%s)", (GOOSE_LOCK_ID,)))
        monkeypatch.setattr(psycopg.Connection, "execute", counted)
        letting_go.start()
        try:
            AdvisoryLocker().lock(waiter, 30)
        finally:
            letting_go.join()
            monkeypatch.undo()
        assert waiter.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
        ).fetchone() == (1,)
    # pg_try_advisory_lock, about three one-second polls, RESET lock_timeout
    assert len(polls) <= 7, f"{len(polls)} statements while waiting 2.5 s"


def test_lock_timeout_must_be_a_duration(migrations: MigrationDir) -> None:
    result = run_cli("up", "--lock-timeout", "soon", dsn="host=127.0.0.1", directory=migrations.path)
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr


def test_the_lock_is_gooses_key_4097083626(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (GOOSE_LOCK_KEY,))
        result = run_cli("up", "--lock-timeout", "1s", dsn=dsn, directory=migrations.path)
    assert result.returncode == 3, result.stderr
    assert "advisory key 4097083626" in result.stderr
    assert tables(dsn) == set()


def test_the_lock_is_released_when_a_migration_fails(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "-- +goose Up\nSELECT 1 / 0;\n")
    with connect(dsn) as conn:
        migrator = Migrator(conn, migrations.path, TableName.parse("_migrations"))
        with pytest.raises(MigrationFailed):
            migrator.up(lock_wait=5)
        held = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchone()
    assert held == (0,)


@pytest.mark.parametrize(
    "command",
    [["up"], ["up-by-one"], ["up-to", "1"], ["down"], ["down-to", "0"], ["redo"], ["reset"], ["migrate-to", "latest"]],
    ids=lambda command: command[0],
)
def test_every_writing_command_gives_up_on_gooses_lock_after_lock_timeout(
    dsn: str, migrations: MigrationDir, command: list[str]
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    if command[0] in ("down", "down-to", "redo", "reset"):
        assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    before = versions(dsn) if "_migrations" in tables(dsn) else None
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4097083626)")
        waited = run_cli(*command, "--lock-timeout", "1s", dsn=dsn, directory=migrations.path)
    assert waited.returncode == 3, waited.stderr
    assert (versions(dsn) if "_migrations" in tables(dsn) else None) == before
