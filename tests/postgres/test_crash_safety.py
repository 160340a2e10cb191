"""The migrator killed with SIGKILL mid-migration, against a real PostgreSQL."""

from __future__ import annotations

import json
import signal

from tests.support import ADVISORY_LOCKS_HERE, MigrationDir, query, tables, versions, wait_until
from tests.support.migrator_process import run_migrator, started_migrator

SLOW_TX = "-- +goose Up\nCREATE TABLE half (id bigint);\nSELECT pg_sleep(60);\nCREATE TABLE other (id bigint);\n"
SLOW_NO_TX = (
    "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE IF NOT EXISTS first_part (id bigint);\n"
    "SELECT pg_sleep(60);\nCREATE TABLE IF NOT EXISTS second_part (id bigint);\n"
)


def kill_during_sleep(dsn: str, migrations: MigrationDir) -> None:
    with started_migrator("up", "--dir", str(migrations.path), "--dsn", dsn) as process:
        wait_until(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'migrator' AND query LIKE '%pg_sleep%'"
            " AND datname = current_database()",
            dsn,
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    # client_connection_check_interval lets the server notice the dead client and let go.
    wait_until(
        f"SELECT ({ADVISORY_LOCKS_HERE}) = 0",
        dsn,
        seconds=15,
    )


def test_sigkill_mid_transaction_leaves_nothing_and_the_next_run_applies(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_slow.sql", SLOW_TX)
    kill_during_sleep(dsn, migrations)
    assert "half" not in tables(dsn)
    assert versions(dsn) == [0]

    migrations.add("00001_slow.sql", SLOW_TX.replace("pg_sleep(60)", "pg_sleep(0)"))
    rerun = run_migrator("up", dsn=dsn, directory=migrations.path)
    assert rerun.returncode == 0, rerun.stderr
    assert {"half", "other"} <= tables(dsn)
    assert versions(dsn) == [0, 1]


def test_interrupted_no_transaction_migration_is_reported(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_slow.sql", SLOW_NO_TX)
    kill_during_sleep(dsn, migrations)
    assert "first_part" in tables(dsn)
    assert "second_part" not in tables(dsn)

    status = run_migrator("status", dsn=dsn, directory=migrations.path)
    assert status.returncode == 0
    assert (
        "applying 00001_slow.sql (NO TRANSACTION) was interrupted after 1 of 3 statement(s):"
        " statements 1 to 1 ran and were not rolled back" in status.stdout
    )
    assert "undo them by hand, then run `up`" in status.stdout
    document = json.loads(run_migrator("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert document["interrupted"] == [
        {"version": 1, "name": "00001_slow.sql", "state": "applying", "statements_done": 1, "statements_total": 3}
    ]
    assert document["pending"] == [1]

    migrations.add("00001_slow.sql", SLOW_NO_TX.replace("pg_sleep(60)", "pg_sleep(0)"))
    rerun = run_migrator("up", dsn=dsn, directory=migrations.path)
    assert rerun.returncode == 0, rerun.stderr
    assert "interrupted after 1 of 3 statement(s); running it again from the start" in rerun.stdout
    assert "second_part" in tables(dsn)
    assert versions(dsn) == [0, 1]
    after = json.loads(run_migrator("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert after["interrupted"] == []
    assert query(dsn, "SELECT state FROM _migrations_ledger") == [("applied",)]
