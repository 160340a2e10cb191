"""The run history and `migrate-to`, against a real PostgreSQL."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from migrator.history import KEEP_RUNS
from tests.cli_runner import run_cli
from tests.support import WRITING_FUNCTION, MigrationDir, query, table_file, tables, versions

NOMAD = {"MIGRATOR_IMAGE": "registry.test/db-migrator@sha256:" + "ab" * 32, "NOMAD_ALLOC_ID": "alloc-1234"}


def runs(dsn: str, migrations: MigrationDir) -> list[dict[str, object]]:
    result = run_cli("history", "--json", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["runs"])


# -- history -----------------------------------------------------------------------------


def test_a_successful_run_records_image_allocation_and_versions(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=NOMAD).returncode == 0
    [run] = runs(dsn, migrations)
    assert (run["outcome"], run["command"], run["applied"]) == ("succeeded", "up", [1, 2])
    assert (run["image"], run["allocation"]) == (NOMAD["MIGRATOR_IMAGE"], "alloc-1234")
    assert run["finished_at"] is not None
    assert run["error"] is None


def test_a_failed_run_records_file_statement_line_and_message(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_bad.sql", "-- +goose Up\nCREATE TABLE b (id int);\n\nSELECT 1 / 0;\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path, env=NOMAD)
    assert result.returncode == 1
    [run] = runs(dsn, migrations)
    assert (run["outcome"], run["applied"]) == ("failed", [1])
    assert (run["failed_file"], run["failed_statement"], run["failed_line"]) == ("00002_bad.sql", 2, 4)
    assert "division by zero" in str(run["error"])
    assert str(run["error"]) in result.stderr  # the migrator's own words, as the operator saw them
    assert "b" not in tables(dsn)


def test_the_failure_record_survives_a_terminated_session(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_killed.sql", "-- +goose Up\nSELECT pg_terminate_backend(pg_backend_pid());\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    [run] = runs(dsn, migrations)
    assert run["outcome"] == "failed"
    assert run["failed_file"] == "00001_killed.sql"


def test_the_password_is_never_recorded(pg_admin_dsn: str, dsn: str, migrations: MigrationDir) -> None:
    password = psycopg.conninfo.conninfo_to_dict(dsn)["password"]
    migrations.add("00001_leak.sql", f"-- +goose Up\nSELECT '{password}'::int;\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 1
    assert str(password) not in json.dumps(runs(dsn, migrations))
    assert query(dsn, "SELECT count(*) FROM _migrations_runs WHERE error LIKE %s", (f"%{password}%",)) == [(0,)]


def test_bad_input_records_nothing(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "SELECT 1;\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 2
    assert tables(dsn) == set()


def test_history_keeps_the_newest_runs_only(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    query(
        dsn,
        "INSERT INTO _migrations_runs (command, outcome) SELECT 'up', 'succeeded' FROM generate_series(1, %s)",
        (KEEP_RUNS + 20,),
    )
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, "SELECT count(*) FROM _migrations_runs") == [(100,)]
    newest = runs(dsn, migrations)[0]
    assert newest["outcome"] == "succeeded"
    assert newest["applied"] == []


def test_history_text_lists_newest_first(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 0
    lines = run_cli("history", dsn=dsn, directory=migrations.path).stdout.splitlines()
    assert [line.split()[4] for line in lines] == ["down", "up"]


def test_history_text_shows_each_field_or_a_dash(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=NOMAD).returncode == 0
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 0
    query(dsn, "UPDATE _migrations_runs SET finished_at = NULL, outcome = 'running' WHERE command = 'down'")
    lines = run_cli("history", dsn=dsn, directory=migrations.path).stdout.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}"
    assert re.fullmatch(stamp + r"  running             -  down {21}applied=-  image=-  alloc=-", lines[0]), lines[0]
    assert re.fullmatch(
        stamp + r"  succeeded   +\d+\.\d\ds  up {23}applied=1,2"
        rf"  image={re.escape(NOMAD['MIGRATOR_IMAGE'])}  alloc=alloc-1234",
        lines[1],
    ), lines[1]
    assert len(lines) == 2
    migrations.add("00003_bad.sql", "-- +goose Up\nSELECT 1 / 0;\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 1
    failed = run_cli("history", dsn=dsn, directory=migrations.path).stdout.splitlines()
    assert failed[1].startswith("    00003_bad.sql (up): statement 1 (line 2) failed"), failed[:2]


def test_history_reads_in_a_read_only_session(dsn: str, migrations: MigrationDir) -> None:
    """A view standing for the runs table, whose rows call a writing function, cannot write."""
    query(
        dsn,
        WRITING_FUNCTION
        + " CREATE VIEW _migrations_runs AS SELECT 1::bigint AS id, now() AS started_at, now() AS finished_at,"
        " ''::text AS image, ''::text AS allocation, 'up'::text AS command, 'succeeded'::text AS outcome,"
        " ARRAY[write_audit()] AS applied, NULL::text AS failed_file, NULL::int AS failed_statement,"
        " NULL::int AS failed_line, NULL::text AS error",
    )
    result = run_cli("history", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert "read-only transaction" in result.stderr
    assert query(dsn, "SELECT count(*) FROM audit") == [(0,)]


def test_history_of_a_database_never_migrated_is_empty(dsn: str, migrations: MigrationDir) -> None:
    result = run_cli("history", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0
    assert result.stdout.strip() == "migrator: no recorded runs"


# -- migrate-to --------------------------------------------------------------------------


@pytest.fixture
def three(migrations: MigrationDir) -> MigrationDir:
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", table_file(name))
    return migrations


def test_migrate_to_goes_forward_to_exactly_the_version(dsn: str, three: MigrationDir) -> None:
    assert run_cli("migrate-to", "2", dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1, 2]
    assert run_cli("migrate-to", "latest", dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1, 2, 3]


def test_migrate_to_going_down_needs_allow_down(dsn: str, three: MigrationDir) -> None:
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    refused = run_cli("migrate-to", "1", dsn=dsn, directory=three.path)
    assert refused.returncode == 2
    assert "would roll back 00003_c.sql, 00002_b.sql" in refused.stderr
    assert "--allow-down" in refused.stderr
    assert versions(dsn) == [0, 1, 2, 3]
    allowed = run_cli("migrate-to", "1", "--allow-down", dsn=dsn, directory=three.path)
    assert allowed.returncode == 0, allowed.stderr
    assert versions(dsn) == [0, 1]
    assert not {"b", "c"} & tables(dsn)


def test_migrate_to_the_current_version_does_nothing(dsn: str, three: MigrationDir) -> None:
    assert run_cli("up-to", "2", dsn=dsn, directory=three.path).returncode == 0
    result = run_cli("migrate-to", "2", dsn=dsn, directory=three.path)
    assert result.returncode == 0
    assert "already at version 2" in result.stdout
    assert versions(dsn) == [0, 1, 2]


def test_migrate_to_an_unknown_version_is_refused(dsn: str, three: MigrationDir) -> None:
    result = run_cli("migrate-to", "7", dsn=dsn, directory=three.path)
    assert result.returncode == 2
    assert "no migration file has version 7" in result.stderr
    assert tables(dsn) == set()


def test_migrate_to_must_name_a_file_of_the_directory(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00002_b.sql", table_file("b"))
    result = run_cli("migrate-to", "1", dsn=dsn, directory=migrations.path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "migrator: error: migrate-to: no migration file has version 1: it is not one of this directory's"
        " (or this image's) versions"
    )
    before_all = run_cli("migrate-to", "0", dsn=dsn, directory=migrations.path)
    assert before_all.returncode == 0, before_all.stderr
    assert before_all.stdout.strip() == "migrator: already at version 0; nothing to do"
    assert "_migrations" not in tables(dsn)


def test_migrate_to_waits_for_the_lock_as_long_as_it_is_told(dsn: str, three: MigrationDir) -> None:
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4097083626)")
        result = run_cli("migrate-to", "latest", "--lock-timeout", "1s", dsn=dsn, directory=three.path)
    assert result.returncode == 3, result.stderr
    assert "not acquired within 1s" in result.stderr
    assert tables(dsn) == set()


def test_migrate_to_below_accepts_an_edit_when_asked(dsn: str, three: MigrationDir) -> None:
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    edited = three.path / "00003_c.sql"
    edited.write_text(edited.read_text() + "-- reviewed\n")
    result = run_cli("migrate-to", "1", "--allow-down", "--accept-edited", dsn=dsn, directory=three.path)
    assert result.returncode == 0, result.stderr
    assert "accepted the edit of 00003_c.sql" in result.stdout + result.stderr
    assert versions(dsn) == [0, 1]


def test_migrate_to_is_recorded_with_its_target(dsn: str, three: MigrationDir) -> None:
    assert run_cli("migrate-to", "2", dsn=dsn, directory=three.path).returncode == 0
    [run] = runs(dsn, three)
    assert (run["command"], run["applied"]) == ("migrate-to 2", [1, 2])
