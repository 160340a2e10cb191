"""The run history and `migrate-to`, against a real PostgreSQL."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from migrator.history import KEEP_RUNS
from tests.support import WRITING_FUNCTION, MigrationDir, query, rollback_done, table_file, tables, versions
from tests.support.cli_runner import run_cli

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
    """Without it, a target below the database is left as it is, said so, and exits 0: Nomad
    starts an older job version's `migrate-to` again by itself (auto-revert, reschedules)."""
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    kept = run_cli("migrate-to", "1", dsn=dsn, directory=three.path)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.splitlines() == [
        "migrator: the database is above version 1 (version(s) 2, 3 applied); going down needs --allow-down"
        " (the stack setting allowDown): nothing rolled back",
        "migrator: no migrations to run. current version: 3",
    ]
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


def test_a_database_ahead_of_the_directory_is_reported_and_left_as_it_is(dsn: str, three: MigrationDir) -> None:
    """An older image (fewer files) on a database a newer one migrated: nothing to do, as goose's up,
    whatever the newer files were; a file gone from within the directory's range is still refused."""
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    (three.path / "00003_c.sql").unlink()
    for command in (("up",), ("migrate-to", "latest")):
        result = run_cli(*command, dsn=dsn, directory=three.path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "migrator: the database is ahead of these migrations: version(s) 3 applied beyond the newest file (2),"
            " by a newer image; nothing of them to apply or roll back",
            "migrator: no migrations to run. current version: 3",
        ]
    assert versions(dsn) == [0, 1, 2, 3]
    assert [run["outcome"] for run in runs(dsn, three)[:2]] == ["succeeded", "succeeded"]
    (three.path / "00001_a.sql").unlink()
    refused = run_cli("up", dsn=dsn, directory=three.path)
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "migrator: error: 00001_a.sql (version 1) was applied but its file is gone. Restore the applied file(s)"
    )


def test_a_rollback_runs_once_per_rollback_id(dsn: str, three: MigrationDir) -> None:
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    rollback = ("migrate-to", "1", "--allow-down", "--rollback-id", "rb-1")
    assert run_cli(*rollback, dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1]
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0  # a later forward deployment
    again = run_cli(*rollback, dsn=dsn, directory=three.path)
    assert again.returncode == 0, again.stderr
    [notice, final] = again.stdout.splitlines()
    assert re.fullmatch("migrator: " + rollback_done("rb-1", 1, "2, 3"), notice), notice
    assert final == "migrator: no migrations to run. current version: 3"
    assert versions(dsn) == [0, 1, 2, 3]
    assert {"b", "c"} <= tables(dsn)
    another = run_cli("migrate-to", "1", "--allow-down", "--rollback-id", "rb-2", dsn=dsn, directory=three.path)
    assert another.returncode == 0, another.stderr
    assert not {"b", "c"} & tables(dsn), "a new rollback id is a new rollback"
    recorded = [(run["command"], run["rollback_id"], run["outcome"]) for run in runs(dsn, three)]
    assert recorded == [
        ("migrate-to 1", "rb-2", "succeeded"),
        ("migrate-to 1", "rb-1", "succeeded"),
        ("up", None, "succeeded"),
        ("migrate-to 1", "rb-1", "succeeded"),
        ("up", None, "succeeded"),
    ]


def test_a_failed_rollback_is_not_completed_and_runs_again(dsn: str, three: MigrationDir) -> None:
    """Nomad retries the allocation of the deployment that asked for it: that is the same rollback."""
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    broken = three.path / "00002_b.sql"
    broken.write_text("-- +goose Up\nCREATE TABLE b (id int);\n-- +goose Down\nSELECT 1 / 0;\n")
    rollback = ("migrate-to", "1", "--allow-down", "--accept-edited", "--rollback-id", "rb-1")
    assert run_cli(*rollback, dsn=dsn, directory=three.path).returncode == 1
    assert versions(dsn) == [0, 1, 2]
    broken.write_text(table_file("b"))
    assert run_cli(*rollback, dsn=dsn, directory=three.path).returncode == 0
    assert versions(dsn) == [0, 1]


@pytest.mark.parametrize("value", ["", "has space", "x" * 65, "semi;colon"])
def test_a_rollback_id_is_letters_digits_and_a_few_signs(dsn: str, three: MigrationDir, value: str) -> None:
    result = run_cli("migrate-to", "1", "--allow-down", "--rollback-id", value, dsn=dsn, directory=three.path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"migrator: error: --rollback-id must be 1 to 64 letters, digits, '.', '_' or '-', got {value!r}"
    )
    assert tables(dsn) == set()


def test_the_deployment_is_recorded_and_an_older_runs_table_gains_its_columns(dsn: str, three: MigrationDir) -> None:
    query(
        dsn,
        "CREATE TABLE _migrations_runs (id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,"
        " started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, image text NOT NULL DEFAULT '',"
        " allocation text NOT NULL DEFAULT '', command text NOT NULL, outcome text NOT NULL DEFAULT 'running',"
        " applied bigint[] NOT NULL DEFAULT '{}', failed_file text, failed_statement integer, failed_line integer,"
        " error text); INSERT INTO _migrations_runs (command, outcome) VALUES ('up', 'succeeded')",
    )
    [old] = runs(dsn, three)
    assert (old["deployment"], old["rollback_id"]) == ("", None), "an older table reads with the defaults"
    env = {**NOMAD, "MIGRATOR_DEPLOYMENT": "deploy-7f3a"}
    assert run_cli("migrate-to", "latest", dsn=dsn, directory=three.path, env=env).returncode == 0
    new, old = runs(dsn, three)
    assert (new["deployment"], new["rollback_id"], new["image"]) == ("deploy-7f3a", None, NOMAD["MIGRATOR_IMAGE"])
    assert (old["deployment"], old["rollback_id"]) == ("", None)


def test_pruning_keeps_the_run_that_completed_each_rollback(dsn: str, three: MigrationDir) -> None:
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    rollback = ("migrate-to", "1", "--allow-down", "--rollback-id", "rb-kept")
    assert run_cli(*rollback, dsn=dsn, directory=three.path).returncode == 0
    assert run_cli(*rollback, dsn=dsn, directory=three.path).returncode == 0  # already there: completes it again
    query(
        dsn,
        "INSERT INTO _migrations_runs (command, outcome) SELECT 'up', 'succeeded' FROM generate_series(1, %s)",
        (KEEP_RUNS + 5,),
    )
    assert run_cli("up", dsn=dsn, directory=three.path).returncode == 0
    kept = query(dsn, "SELECT id FROM _migrations_runs WHERE rollback_id IS NOT NULL")
    assert kept == [(2,)], "the first run that completed it, only"
    assert query(dsn, "SELECT count(*) FROM _migrations_runs") == [(KEEP_RUNS + 1,)]
    again = run_cli(*rollback, dsn=dsn, directory=three.path)
    assert "rollback rb-kept to version 1 already completed" in again.stdout
    assert versions(dsn)[-1] == 3
