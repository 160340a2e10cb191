"""The run history and `migrate-to`, against a real PostgreSQL."""

from __future__ import annotations

import json

import psycopg
import pytest

from migrator.history import KEEP_RUNS
from tests.migrator_process import run_migrator
from tests.support import MigrationDir, query, table_file, tables, versions

NOMAD = {"MIGRATOR_IMAGE": "registry.test/db-migrator@sha256:" + "ab" * 32, "NOMAD_ALLOC_ID": "alloc-1234"}


def runs(dsn: str, migrations: MigrationDir) -> list[dict[str, object]]:
    result = run_migrator("history", "--json", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["runs"])


# -- history -----------------------------------------------------------------------------


def test_a_successful_run_records_image_allocation_and_versions(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_migrator("up", dsn=dsn, directory=migrations.path, env=NOMAD).returncode == 0
    [run] = runs(dsn, migrations)
    assert (run["outcome"], run["command"], run["applied"]) == ("succeeded", "up", [1, 2])
    assert (run["image"], run["allocation"]) == (NOMAD["MIGRATOR_IMAGE"], "alloc-1234")
    assert run["finished_at"] is not None
    assert run["error"] is None


def test_a_failed_run_records_file_statement_line_and_message(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_bad.sql", "-- +goose Up\nCREATE TABLE b (id int);\n\nSELECT 1 / 0;\n")
    result = run_migrator("up", dsn=dsn, directory=migrations.path, env=NOMAD)
    assert result.returncode == 1
    [run] = runs(dsn, migrations)
    assert (run["outcome"], run["applied"]) == ("failed", [1])
    assert (run["failed_file"], run["failed_statement"], run["failed_line"]) == ("00002_bad.sql", 2, 4)
    assert "division by zero" in str(run["error"])
    assert str(run["error"]) in result.stderr  # the migrator's own words, as the operator saw them
    assert "b" not in tables(dsn)


def test_the_failure_record_survives_a_terminated_session(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_killed.sql", "-- +goose Up\nSELECT pg_terminate_backend(pg_backend_pid());\n")
    result = run_migrator("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    [run] = runs(dsn, migrations)
    assert run["outcome"] == "failed"
    assert run["failed_file"] == "00001_killed.sql"


def test_the_password_is_never_recorded(pg_admin_dsn: str, dsn: str, migrations: MigrationDir) -> None:
    password = psycopg.conninfo.conninfo_to_dict(dsn)["password"]
    migrations.add("00001_leak.sql", f"-- +goose Up\nSELECT '{password}'::int;\n")
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 1
    assert str(password) not in json.dumps(runs(dsn, migrations))
    assert query(dsn, "SELECT count(*) FROM _migrations_runs WHERE error LIKE %s", (f"%{password}%",)) == [(0,)]


def test_bad_input_records_nothing(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "SELECT 1;\n")
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 2
    assert tables(dsn) == set()


def test_history_keeps_the_newest_runs_only(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 0
    query(
        dsn,
        "INSERT INTO _migrations_runs (command, outcome) SELECT 'up', 'succeeded' FROM generate_series(1, %s)",
        (KEEP_RUNS + 20,),
    )
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, "SELECT count(*) FROM _migrations_runs") == [(100,)]
    newest = runs(dsn, migrations)[0]
    assert newest["outcome"] == "succeeded"
    assert newest["applied"] == []


def test_history_text_lists_newest_first(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert run_migrator("down", dsn=dsn, directory=migrations.path).returncode == 0
    lines = run_migrator("history", dsn=dsn, directory=migrations.path).stdout.splitlines()
    assert [line.split()[4] for line in lines] == ["down", "up"]


def test_history_of_a_database_never_migrated_is_empty(dsn: str, migrations: MigrationDir) -> None:
    result = run_migrator("history", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0
    assert result.stdout.strip() == "migrator: no recorded runs"


# -- migrate-to --------------------------------------------------------------------------


@pytest.fixture
def three(migrations: MigrationDir) -> MigrationDir:
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", table_file(name))
    return migrations


def test_migrate_to_goes_forward_to_exactly_the_version(dsn: str, three: MigrationDir) -> None:
    assert run_migrator("migrate-to", "2", dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1, 2]
    assert run_migrator("migrate-to", "latest", dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1, 2, 3]


def test_migrate_to_going_down_needs_allow_down(dsn: str, three: MigrationDir) -> None:
    assert run_migrator("up", dsn=dsn, directory=three.path).returncode == 0
    refused = run_migrator("migrate-to", "1", dsn=dsn, directory=three.path)
    assert refused.returncode == 2
    assert "would roll back 00003_c.sql, 00002_b.sql" in refused.stderr
    assert "--allow-down" in refused.stderr
    assert versions(dsn) == [0, 1, 2, 3]
    allowed = run_migrator("migrate-to", "1", "--allow-down", dsn=dsn, directory=three.path)
    assert allowed.returncode == 0, allowed.stderr
    assert versions(dsn) == [0, 1]
    assert not {"b", "c"} & tables(dsn)


def test_migrate_to_the_current_version_does_nothing(dsn: str, three: MigrationDir) -> None:
    assert run_migrator("up-to", "2", dsn=dsn, directory=three.path).returncode == 0
    result = run_migrator("migrate-to", "2", dsn=dsn, directory=three.path)
    assert result.returncode == 0
    assert "already at version 2" in result.stdout
    assert versions(dsn) == [0, 1, 2]


def test_migrate_to_an_unknown_version_is_refused(dsn: str, three: MigrationDir) -> None:
    result = run_migrator("migrate-to", "7", dsn=dsn, directory=three.path)
    assert result.returncode == 2
    assert "no migration file has version 7" in result.stderr
    assert tables(dsn) == set()


def test_migrate_to_is_recorded_with_its_target(dsn: str, three: MigrationDir) -> None:
    assert run_migrator("migrate-to", "2", dsn=dsn, directory=three.path).returncode == 0
    [run] = runs(dsn, three)
    assert (run["command"], run["applied"]) == ("migrate-to 2", [1, 2])
