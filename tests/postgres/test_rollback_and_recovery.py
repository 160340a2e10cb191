"""Rolling back in goose's order, and recovering from interrupted runs and dead connections,
against a real PostgreSQL (edited files: test_checksums.py; tampering with goose's table:
test_seal.py)."""

from __future__ import annotations

import json
import signal

import psycopg
import pytest
from psycopg import conninfo

from migrator import Migrator, TableName
from migrator.dsn import connect
from tests.support import REPO, MigrationDir, login_role, query, table_file, tables, versions, wait_until
from tests.support.cli_runner import rolled_back, run_cli
from tests.support.migrator_process import started_migrator


@pytest.fixture
def out_of_order(dsn: str, migrations: MigrationDir) -> MigrationDir:
    """Versions 1 and 3 applied, then 2 with --allow-missing: goose's ids say 1, 3, 2."""
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00003_c.sql", table_file("c"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", "--allow-missing", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1, 3, 2]
    return migrations


# -- 3. goose's order --------------------------------------------------------------------


def test_down_rolls_back_the_most_recently_applied_version(dsn: str, out_of_order: MigrationDir) -> None:
    result = run_cli("down", dsn=dsn, directory=out_of_order.path)
    assert rolled_back(result) == ["00002_b.sql"]
    assert versions(dsn) == [0, 1, 3]


def test_version_is_the_most_recently_applied(dsn: str, out_of_order: MigrationDir) -> None:
    assert run_cli("version", dsn=dsn, directory=out_of_order.path).stdout.strip() == "migrator: version 2"


def test_down_to_walks_back_by_application_and_stops_at_the_target(dsn: str, out_of_order: MigrationDir) -> None:
    result = run_cli("down-to", "1", dsn=dsn, directory=out_of_order.path)
    assert rolled_back(result) == ["00002_b.sql", "00003_c.sql"]
    assert versions(dsn) == [0, 1]


def test_down_to_stops_at_the_first_version_at_or_below_the_target(dsn: str, out_of_order: MigrationDir) -> None:
    # goose stops walking back at version 2 (applied last), though 3 > 2 stays applied.
    result = run_cli("down-to", "2", dsn=dsn, directory=out_of_order.path)
    assert rolled_back(result) == []
    assert versions(dsn) == [0, 1, 3, 2]


def test_redo_repeats_the_most_recently_applied_version(dsn: str, out_of_order: MigrationDir) -> None:
    result = run_cli("redo", dsn=dsn, directory=out_of_order.path)
    assert rolled_back(result) == ["00002_b.sql", "00002_b.sql"]
    assert versions(dsn) == [0, 1, 3, 2]


def test_reset_rolls_back_by_version_highest_first(dsn: str, out_of_order: MigrationDir) -> None:
    result = run_cli("reset", dsn=dsn, directory=out_of_order.path)
    assert rolled_back(result) == ["00003_c.sql", "00002_b.sql", "00001_a.sql"]
    assert versions(dsn) == [0]
    assert not {"a", "b", "c"} & tables(dsn)


# -- 8. interrupted NO TRANSACTION files -------------------------------------------------

FOUR_STEPS = """-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE step_one (id int);
CREATE TABLE step_two (id int);
SELECT 1 / (SELECT count(*) FROM step_two);
CREATE TABLE step_four (id int);
"""


def interrupted(dsn: str, migrations: MigrationDir) -> list[dict[str, object]]:
    document = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    return list(document["interrupted"])


def test_a_second_failure_keeps_what_the_first_run_got_to(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_base.sql", table_file("base"))
    migrations.add("00002_steps.sql", FOUR_STEPS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 1
    assert [e["statements_done"] for e in interrupted(dsn, migrations)] == [2]
    again = run_cli("up", dsn=dsn, directory=migrations.path)
    assert again.returncode == 1
    assert "statement 1 (line 3) failed" in again.stderr  # step_one exists already
    assert [e["statements_done"] for e in interrupted(dsn, migrations)] == [2]
    status = run_cli("status", dsn=dsn, directory=migrations.path).stdout
    assert "statements 1 to 2 ran and were not rolled back" in status
    assert "`up` runs the file again from its first statement" in status


def test_down_refuses_while_a_file_is_interrupted(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_base.sql", table_file("base"))
    migrations.add("00002_steps.sql", FOUR_STEPS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 1
    refused = run_cli("down", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00002_steps.sql (NO TRANSACTION) was interrupted" in refused.stderr
    assert "--allow-interrupted" in refused.stderr
    assert versions(dsn) == [0, 1]
    forced = run_cli("down", "--allow-interrupted", dsn=dsn, directory=migrations.path)
    assert rolled_back(forced) == ["00001_base.sql"]


def test_a_rollback_that_stopped_half_way_is_finished_by_the_next_down(dsn: str, migrations: MigrationDir) -> None:
    """Only the file whose own rollback stopped may be rolled back again without --allow-interrupted."""
    migrations.add("00001_base.sql", table_file("base"))
    migrations.add(
        "00002_nt.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE x (id int);\nCREATE TABLE blocker (id int);\n"
        "-- +goose Down\nDROP TABLE IF EXISTS x;\nDROP TABLE blocker;\n",
    )
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    query(dsn, "DROP TABLE blocker")
    stopped = run_cli("down", dsn=dsn, directory=migrations.path)
    assert stopped.returncode == 1
    assert versions(dsn) == [0, 1, 2]  # the version row goes last: still applied
    assert interrupted(dsn, migrations) == [
        {"version": 2, "name": "00002_nt.sql", "state": "reverting", "statements_done": 1, "statements_total": 2}
    ]
    kept = run_cli("down-to", "2", dsn=dsn, directory=migrations.path)  # would keep it half rolled back
    assert kept.returncode == 2
    assert "rolling back 00002_nt.sql (NO TRANSACTION) was interrupted" in kept.stderr
    query(dsn, "CREATE TABLE blocker (id int)")
    finished = run_cli("down", dsn=dsn, directory=migrations.path)
    assert finished.returncode == 0, finished.stderr
    assert rolled_back(finished) == ["00002_nt.sql"]
    assert versions(dsn) == [0, 1]
    assert tables(dsn) & {"x", "blocker"} == set()


# -- 7. a dead network ends the run --------------------------------------------------------


def test_both_ends_of_the_connection_use_keepalives(dsn: str, migrations: MigrationDir) -> None:
    """The client's from the start; the server's while a writing run holds the session, and
    only then: on a pooled server connection they would outlive the run."""
    server = (
        "SELECT current_setting('tcp_keepalives_idle') idle, current_setting('tcp_user_timeout') unacked,"
        " current_setting('client_connection_check_interval') checked"
    )
    migrations.add("00001_seen.sql", f"-- +goose Up\nCREATE TABLE seen AS {server};\n")
    with connect(dsn) as conn:
        client = conn.info.get_parameters()
        assert (client["keepalives"], client["keepalives_idle"], client["tcp_user_timeout"]) == ("1", "30", "60000")
        before = conn.execute(server).fetchone()
        Migrator(conn, migrations.path, TableName.parse("_migrations")).up(lock_wait=5)
        assert conn.execute(server).fetchone() == before
    assert before is not None
    assert before[1:] == ("0", "0")  # PostgreSQL's defaults; the first is the kernel's
    assert query(dsn, "SELECT * FROM seen") == [("30", "60000", "1s")]


def test_keepalive_settings_in_the_dsn_win(dsn: str) -> None:
    with connect(conninfo.make_conninfo(dsn, keepalives_idle=5, connect_timeout=3)) as conn:
        client = conn.info.get_parameters()
        assert (client["keepalives_idle"], client["connect_timeout"]) == ("5", "3")


# -- SIGTERM -------------------------------------------------------------------------------


def test_sigterm_during_a_no_transaction_file_says_what_was_left(dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_slow.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE first_part (id int);\nSELECT pg_sleep(60);\n"
        "CREATE TABLE second_part (id int);\n",
    )
    with started_migrator("up", "--dir", str(migrations.path), "--dsn", dsn) as process:
        wait_until(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"
            " AND datname = current_database()",
            dsn,
        )
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143
    assert "statement 2 (line 4) was interrupted in a NO TRANSACTION migration" in stderr
    assert "statement 1 (line 3) ran and was NOT rolled back" in stderr
    assert "first_part" in tables(dsn)
    assert "second_part" not in tables(dsn)
    assert [e["statements_done"] for e in interrupted(dsn, migrations)] == [1]


# -- read-only roles and a ledger the migrator does not understand -----------------------


def test_read_commands_work_with_select_on_the_goose_table_only(
    pg_admin_dsn: str, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    reader = login_role(dsn, "reader", "reader-password", "GRANT SELECT ON _migrations TO {}")
    for command in ("status", "version", "plan", "lint"):
        result = run_cli(command, dsn=reader, directory=migrations.path)
        assert result.returncode == 0, (command, result.stderr)
        assert "no privilege to read _migrations_ledger" in result.stderr
    status = json.loads(run_cli("status", "--json", dsn=reader, directory=migrations.path).stdout)
    assert status["checksums_checked"] is False
    assert status["pending"] == []


def test_an_unknown_ledger_state_is_a_clear_error(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE _migrations_ledger DROP CONSTRAINT _migrations_ledger_state_check")
        conn.execute("UPDATE _migrations_ledger SET state = 'frozen' WHERE version_id = 1")
    result = run_cli("status", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "migrator: error: _migrations_ledger: version 1 has the unknown state 'frozen'; a newer migrator may have"
        " written it. Nothing was changed"
    )


# -- 15. the auth schema a self-hosted database needs ------------------------------------

SUPABASE_USER = "00000000-0000-0000-0000-000000000001"
AUTH_MIGRATION = next((REPO / "migrations").glob("20000101000000_*.sql"), None)


@pytest.fixture
def auth_only(migrations: MigrationDir) -> MigrationDir:
    if AUTH_MIGRATION is None:
        pytest.fail("migrations/20000101000000_*.sql is missing: the API's migrations need auth.users")
    (migrations.path / AUTH_MIGRATION.name).write_bytes(AUTH_MIGRATION.read_bytes())
    return migrations


def auth_objects(dsn: str) -> tuple[object, ...]:
    row = query(
        dsn,
        "SELECT to_regclass('auth.users') IS NOT NULL, to_regprocedure('auth.uid()') IS NOT NULL,"
        " EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated')",
    )
    return row[0]


def test_a_fresh_database_gets_the_auth_schema(dsn: str, auth_only: MigrationDir) -> None:
    first = run_cli("up", dsn=dsn, directory=auth_only.path)
    assert first.returncode == 0, first.stderr
    assert auth_objects(dsn) == (True, True, True)
    assert versions(dsn) == [0, 20000101000000]
    assert query(dsn, "SELECT auth.uid()") == [(None,)]
    columns = query(dsn, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'auth'")
    assert {c[0] for c in columns} == {"id", "email"}
    again = run_cli("up", dsn=dsn, directory=auth_only.path)
    assert "no migrations to run" in again.stdout


def test_supabases_auth_schema_is_left_untouched(dsn: str, auth_only: MigrationDir) -> None:
    query(dsn, "CREATE SCHEMA auth")
    query(dsn, "CREATE TABLE auth.users (id uuid PRIMARY KEY, instance_id uuid, aud text)")
    query(dsn, f"CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql AS $$ SELECT '{SUPABASE_USER}'::uuid $$")
    result = run_cli("up", dsn=dsn, directory=auth_only.path)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 20000101000000]
    assert query(dsn, "SELECT auth.uid()::text") == [(SUPABASE_USER,)]
    columns = query(dsn, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'auth'")
    assert {c[0] for c in columns} == {"id", "instance_id", "aud"}


def test_a_database_the_old_migrator_prepared_skips_the_file(dsn: str, auth_only: MigrationDir) -> None:
    query(
        dsn,
        "CREATE TABLE _migrations (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, version_id bigint NOT NULL,"
        " is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())",
    )
    query(dsn, "INSERT INTO _migrations (version_id, is_applied) VALUES (0, true), (20000101000000, true)")
    result = run_cli("up", dsn=dsn, directory=auth_only.path)
    assert "no migrations to run" in result.stdout
    assert query(dsn, "SELECT to_regnamespace('auth') IS NULL") == [(True,)]
