"""Drift: the live schema against the replay of its applied files on a scratch server, through
the library and the command line; and, without a scratch server, the run history's digests
behind ``status``'s line "the schema changed since the run at T"."""

from __future__ import annotations

import json
from datetime import datetime

import psycopg
import pytest

from migrator import Migrator, TableName
from migrator.drift import changes_since_last_run
from migrator.errors import Failure
from migrator.history import History
from migrator.rehearsal import check_drift
from migrator.rehearsal_report import print_drift_check
from migrator.schema_snapshot import schema_digests
from tests.support import MigrationDir, login_role, query
from tests.support.cli_runner import run_cli
from tests.support.rehearsal_support import SCRATCH_PASSWORD, replayed, throwaway_databases

GOOSE_TABLE = TableName.parse("_migrations")
USERS = """-- +goose Up
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
CREATE INDEX users_email_idx ON users (email);
-- +goose Down
DROP TABLE users;
"""
POSTS = """-- +goose Up
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id), body text);
-- +goose Down
DROP TABLE posts;
"""


def drift_lines(conn: psycopg.Connection, scratch: str, migrations: MigrationDir) -> list[str]:
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.drift is not None, found.replay.message
    return found.drift.lines()


def applied(conn: psycopg.Connection, migrations: MigrationDir) -> MigrationDir:
    migrations.add("00001_users.sql", USERS)
    migrations.add("00002_posts.sql", POSTS)
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    return migrations


def test_no_drift_when_the_database_is_what_its_files_build(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.replay.replayed == [1, 2]
    assert found.replay.complete
    assert found.drift is not None
    assert found.drift.schemas == ["public"]
    assert not found.drift.found
    assert found.drift.lines() == []
    assert found.server == f"{conn.info.dbname} on 127.0.0.1:{conn.info.port}"
    assert found.database.startswith("migrator_rehearsal_")
    assert throwaway_databases(scratch) == []


def test_a_table_dropped_by_hand_is_named_as_missing(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    conn.execute("DROP TABLE posts")
    assert drift_lines(conn, scratch, migrations) == [
        "missing column public.posts.body",
        "missing column public.posts.id",
        "missing column public.posts.user_id",
        "missing constraint public.posts.posts_pkey",
        "missing constraint public.posts.posts_user_id_fkey",
        "missing table public.posts",
    ]


def test_a_column_whose_type_was_changed_by_hand_is_named_with_both_definitions(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    conn.execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(200)")
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.drift is not None
    assert found.drift.lines() == [
        "different column public.users.email: expected 'text NOT NULL', found 'character varying(200) NOT NULL'"
    ]
    (difference,) = found.drift.different
    assert (difference.expected.definition, difference.found.definition) == (
        "text NOT NULL",
        "character varying(200) NOT NULL",
    )


def test_objects_made_by_hand_are_unexpected_in_the_schemas_the_migrations_touch_only(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    conn.execute("CREATE INDEX posts_body_idx ON posts (body)")
    conn.execute("CREATE SCHEMA elsewhere; CREATE TABLE elsewhere.x (id int)")
    conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # how the database was made, not the migrations
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.drift is not None
    assert found.drift.lines() == [
        "unexpected index public.posts_body_idx",
    ]
    assert found.drift.unexpected[0].definition == "CREATE INDEX posts_body_idx ON public.posts USING btree (body)"
    assert found.drift.as_dict()["unexpected"] == [
        {
            "kind": "index",
            "identity": "public.posts_body_idx",
            "definition": "CREATE INDEX posts_body_idx ON public.posts USING btree (body)",
        }
    ]
    excluded = check_drift(conn, scratch, migrations.path, GOOSE_TABLE, exclude_schemas=["public"])
    assert excluded.drift is not None
    assert excluded.drift.schemas == []
    assert not excluded.drift.found


def test_a_schema_the_migrations_made_is_compared_and_missing_when_dropped(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_app.sql",
        "-- +goose Up\nCREATE SCHEMA app;\nCREATE TABLE app.items (id int);\nGRANT USAGE ON SCHEMA app TO PUBLIC;\n",
    )
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    conn.execute("DROP SCHEMA app CASCADE")
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.drift is not None
    assert found.drift.schemas == ["app"]  # public holds nothing the migrations made
    assert found.drift.lines() == [
        "missing column app.items.id",
        "missing grant schema app TO (owner)",
        "missing grant schema app TO PUBLIC",
        "missing schema app",
        "missing table app.items",
    ]


def test_unqualified_names_replay_into_the_schema_the_target_resolves_them_to(
    conn: psycopg.Connection, dsn: str, scratch: str, migrations: MigrationDir
) -> None:
    """The target's search path, "$user" as the target's role, decides where an unqualified
    table goes; the scratch session must put it in the same place."""
    user = conn.info.user
    migrations.add("00001_own_schema.sql", f'-- +goose Up\nCREATE SCHEMA "{user}";\nCREATE SCHEMA app;\n')
    migrations.add("00002_items.sql", "-- +goose Up\nCREATE TABLE items (id int);\nCREATE TABLE app_items (id int);\n")
    conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET search_path = "$user", app, public')
    with psycopg.connect(dsn, autocommit=True) as target:
        Migrator(target, migrations.path, GOOSE_TABLE).up(lock_wait=10)
        assert query(dsn, "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'items'") == [(user,)]
        found = check_drift(target, scratch, migrations.path, GOOSE_TABLE)
    assert found.drift is not None
    assert found.drift.schemas == sorted(["app", user])  # app is empty, but the migrations made it
    assert not found.drift.found, found.drift.lines()


def test_a_version_without_a_file_is_named_not_replayed(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir, capsys: pytest.CaptureFixture[str]
) -> None:
    applied(conn, migrations)
    conn.execute("INSERT INTO _migrations (version_id, is_applied) VALUES (7, true); CREATE TABLE seventh (id int)")
    (migrations.path / "00001_users.sql").write_text(
        USERS.replace("email text NOT NULL", "email text NOT NULL, mail text")
    )
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.replay.replayed == [1, 2]
    assert found.replay.unreplayable == [7]
    assert found.replay.edited == ["00001_users.sql"]
    assert found.drift is not None
    assert found.drift.lines() == [
        "missing column public.users.mail",
        "unexpected column public.seventh.id",
        "unexpected table public.seventh",
    ]
    print_drift_check(found)
    assert capsys.readouterr().out.splitlines()[1:] == [
        "-- replayed 2 applied migration(s) in goose's order",
        "-- NOT replayed: version(s) 7 are applied on the target but have no file here",
        "-- replayed from file(s) edited since the target applied them: 00001_users.sql",
        "drift: 3 object(s) differ from what the applied migrations build (schemas public):",
        "    missing column public.users.mail",
        "    unexpected column public.seventh.id",
        "    unexpected table public.seventh",
    ]


def test_files_edited_since_they_were_applied_are_named(
    conn: psycopg.Connection, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    migrations.add("00002_posts.sql", POSTS.replace("body text", "body text NOT NULL"))
    assert check_drift(conn, scratch, migrations.path, GOOSE_TABLE).replay.edited == ["00002_posts.sql"]
    assert drift_lines(conn, scratch, migrations) == [
        "different column public.posts.body: expected 'text NOT NULL', found 'text'"
    ]


def test_a_replay_that_fails_says_where_and_compares_nothing(
    conn: psycopg.Connection, dsn: str, scratch: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS)
    conn.execute("CREATE TABLE made_by_hand (id int)")
    migrations.add(
        "00002_copy.sql", "-- +goose Up\nCREATE TABLE copy (id int);\nINSERT INTO copy SELECT id FROM made_by_hand;\n"
    )
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    reason = 'ERROR: relation "made_by_hand" does not exist (SQLSTATE 42P01)'
    assert found.replay.failure == Failure("00002_copy.sql", "up", 2, 3, reason, True)
    assert found.replay.message == (
        f"00002_copy.sql (up): statement 2 (line 3) failed: {reason}; rolled back: nothing of this file was"
        " applied and version 2 was not recorded"
    )
    assert found.replay.limitation is None
    assert found.replay.replayed == [1]
    assert not found.replay.complete
    assert found.drift is None
    assert throwaway_databases(scratch) == []

    command = run_cli("drift", "--scratch-dsn", scratch, dsn=dsn, directory=migrations.path)
    assert command.returncode == 1
    assert (
        command.stderr
        == f"migrator: error: drift: the applied migrations could not be replayed: {found.replay.message}\n"
    )
    assert f"REPLAY FAILED {found.replay.message}\n" in command.stdout


def test_the_drift_command_prints_each_object_and_exits_5(
    conn: psycopg.Connection, dsn: str, scratch: str, migrations: MigrationDir
) -> None:
    applied(conn, migrations)
    target = dsn
    clean = run_cli("drift", "--scratch-dsn", scratch, dsn=target, directory=migrations.path)
    assert clean.returncode == 0, clean.stderr
    assert clean.stderr == ""
    lines = clean.stdout.splitlines()
    assert lines[0].startswith("-- on the throwaway database migrator_rehearsal_")
    assert lines[0].endswith(
        f" of the scratch server {conn.info.dbname} on 127.0.0.1:{conn.info.port}, dropped afterwards"
    )
    assert lines[1:] == ["-- replayed 2 applied migration(s) in goose's order", "drift: none (schemas public)"]

    conn.execute("DROP INDEX users_email_idx; ALTER TABLE posts ALTER COLUMN body SET NOT NULL")
    drifted = run_cli("drift", dsn=target, directory=migrations.path, env={"MIGRATOR_SCRATCH_DSN": scratch})
    assert drifted.returncode == 5
    assert drifted.stdout.splitlines()[1:] == [
        "-- replayed 2 applied migration(s) in goose's order",
        "drift: 2 object(s) differ from what the applied migrations build (schemas public):",
        "    missing index public.users_email_idx",
        "    different column public.posts.body: expected 'text', found 'text NOT NULL'",
    ]
    assert drifted.stderr == "migrator: error: drift: 2 object(s) differ from what the applied migrations build\n"
    assert SCRATCH_PASSWORD not in drifted.stdout + drifted.stderr

    document = run_cli("drift", "--json", "--scratch-dsn", scratch, dsn=target, directory=migrations.path)
    assert document.returncode == 5
    assert document.stderr == "migrator: error: drift: 2 object(s) differ from what the applied migrations build\n"
    found = json.loads(document.stdout)  # one document: the verdict is in it, not printed again
    assert found.pop("database").startswith("migrator_rehearsal_")
    assert isinstance(found.pop("seconds"), float)
    assert found == {
        "server": f"{conn.info.dbname} on 127.0.0.1:{conn.info.port}",
        "target_version": conn.info.server_version,
        "scratch_version": conn.info.server_version,
        "replay": replayed(1, 2),
        "drift": {
            "schemas": ["public"],
            "missing": [
                {
                    "kind": "index",
                    "identity": "public.users_email_idx",
                    "definition": "CREATE INDEX users_email_idx ON public.users USING btree (email)",
                }
            ],
            "unexpected": [],
            "different": [
                {"kind": "column", "identity": "public.posts.body", "expected": "text", "found": "text NOT NULL"}
            ],
        },
        "roles_appeared": [],
    }


def test_rehearse_and_drift_need_a_scratch_server(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_users.sql", USERS)
    for command in ("rehearse", "drift"):
        refused = run_cli(command, dsn=dsn, directory=migrations.path)
        assert refused.returncode == 2
        assert refused.stderr == (
            "migrator: error: no scratch server: pass --scratch-dsn or set MIGRATOR_SCRATCH_DSN (a PostgreSQL"
            " server where the migrator may create and drop a throwaway database)\n"
        )


def test_a_scratch_server_that_may_not_create_databases_is_refused_by_name(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_users.sql", USERS)
    cannot = login_role(dsn, "nocreatedb", "nocreatedb-pw", "ALTER ROLE {} NOCREATEDB")
    refused = run_cli("drift", "--scratch-dsn", cannot, dsn=dsn, directory=migrations.path)
    assert refused.returncode == 1
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    assert refused.stderr == (
        f"migrator: error: cannot create a throwaway database on the scratch server {database} on"
        f" 127.0.0.1:{psycopg.conninfo.conninfo_to_dict(dsn)['port']}: ERROR: permission denied to create"
        " database (SQLSTATE 42501) (its role needs CREATEDB)\n"
    )
    assert "nocreatedb-pw" not in refused.stdout + refused.stderr


# -- without a scratch server: the digests of the run history -------------------------


# The run history as the migrator before schema digests made it.
OLDER_RUNS_TABLE = (
    "CREATE TABLE _migrations_runs (id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,"
    " started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, image text NOT NULL DEFAULT '',"
    " allocation text NOT NULL DEFAULT '', command text NOT NULL, outcome text NOT NULL DEFAULT 'running',"
    " applied bigint[] NOT NULL DEFAULT '{}', failed_file text, failed_statement integer, failed_line integer,"
    " error text)"
)


def digests_recorded(dsn: str) -> list[object]:
    return [row[0] for row in query(dsn, "SELECT schema_digests FROM _migrations_runs ORDER BY id")]


def test_a_run_that_migrates_records_the_digests_of_the_schema_it_leaves(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    after_up = schema_digests(conn, GOOSE_TABLE)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0  # nothing to do
    migrations.add("00002_bad.sql", "-- +goose Up\nSELECT 1/0;\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 1
    (migrations.path / "00002_bad.sql").unlink()
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 0
    after_down = schema_digests(conn, GOOSE_TABLE)
    assert after_down != after_up
    assert digests_recorded(dsn) == [after_up, None, None, after_down]


def test_status_says_when_the_schema_changed_since_the_last_run_that_migrated_it(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    unchanged = run_cli("status", dsn=dsn, directory=migrations.path)
    assert "schema changed" not in unchanged.stdout
    assert json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)["schema_changed"] is None

    conn.execute("ALTER TABLE users ADD COLUMN nickname text; CREATE SCHEMA extra")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0  # a no-op blesses nothing
    ((finished,),) = query(dsn, "SELECT finished_at FROM _migrations_runs WHERE schema_digests IS NOT NULL")
    assert isinstance(finished, datetime)
    status = run_cli("status", dsn=dsn, directory=migrations.path)
    assert status.returncode == 0
    assert status.stdout.endswith(
        f"\n\nmigrator: the schema changed since the run at {finished:%Y-%m-%d %H:%M:%S%z}, the last that"
        " migrated it (schemas: extra, public); `drift --scratch-dsn ...` names each object\n"
    )
    document = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert document["schema_changed"] == {"since_run_at": finished.isoformat(), "schemas": ["extra", "public"]}

    change = changes_since_last_run(conn, GOOSE_TABLE)
    assert change is not None
    assert (change.run_at, change.schemas) == (finished, ["extra", "public"])


def test_no_recorded_digests_means_nothing_to_compare_with(conn: psycopg.Connection, migrations: MigrationDir) -> None:
    assert changes_since_last_run(conn, GOOSE_TABLE) is None  # no run table
    migrations.add("00001_users.sql", USERS)
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)  # a library run records no history
    History(conn, GOOSE_TABLE).ensure()
    conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    assert changes_since_last_run(conn, GOOSE_TABLE) is None


def test_a_new_run_table_is_made_whole_in_one_statement(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    """Every column, the digests' included, comes from the one CREATE TABLE (one transaction id
    on every column's catalog row): a first run adds none afterwards."""
    migrations.add("00001_users.sql", USERS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert digests_recorded(dsn) == [schema_digests(conn, GOOSE_TABLE)]
    made = query(
        dsn,
        "SELECT count(DISTINCT xmin::text), count(*) FILTER (WHERE attname = 'schema_digests') FROM pg_attribute"
        " WHERE attrelid = '_migrations_runs'::regclass AND attnum > 0",
    )
    assert made == [(1, 1)]


def test_a_run_table_an_older_migrator_made_gains_the_digests_column(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    conn.execute(OLDER_RUNS_TABLE)
    conn.execute("INSERT INTO _migrations_runs (command, outcome) VALUES ('up', 'succeeded')")
    migrations.add("00001_users.sql", USERS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert digests_recorded(dsn) == [None, schema_digests(conn, GOOSE_TABLE)]


def test_a_role_that_may_not_alter_an_older_run_table_still_migrates_without_digests(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS)
    conn.execute(OLDER_RUNS_TABLE)
    deployer = login_role(
        dsn,
        "deployer",
        "deployer-pw",
        "GRANT CREATE, USAGE ON SCHEMA public TO {}",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON _migrations_runs TO {}",
    )
    migrated = run_cli("up", dsn=deployer, directory=migrations.path)
    assert migrated.returncode == 0, migrated.stderr
    assert query(dsn, "SELECT outcome, applied FROM _migrations_runs") == [("succeeded", [1])]
    assert query(
        dsn,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = '_migrations_runs'::regclass"
        " AND attname = 'schema_digests'",
    ) == [(0,)]


def test_a_replay_that_fails_on_rows_fixed_by_hand_says_so(
    conn: psycopg.Connection, dsn: str, scratch: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS.replace("email text NOT NULL", "email text"))
    migrations.add("00002_seed.sql", "-- +goose Up\nINSERT INTO users VALUES (1, NULL);\n")
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    conn.execute("UPDATE users SET email = 'fixed@example.org'")  # by hand, before the next migration
    migrations.add("00003_not_null.sql", "-- +goose Up\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\n")
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    found = check_drift(conn, scratch, migrations.path, GOOSE_TABLE)
    assert found.replay.replayed == [1, 2]
    assert found.replay.limitation == (
        "the failure depends on rows, and the throwaway database holds only the rows the migrations themselves"
        " inserted, not the target's, which may fail it or pass it either way"
    )
    text = run_cli("drift", "--scratch-dsn", scratch, dsn=dsn, directory=migrations.path).stdout.splitlines()
    assert text[-2:] == [
        f"REPLAY FAILED {found.replay.message}",
        f"    rehearsal limitation: {found.replay.limitation}",
    ]


def test_a_role_that_may_not_read_the_run_history_gets_its_status_without_the_line(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_users.sql", USERS)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    reader = login_role(dsn, "statusreader", "statusreader-pw", "GRANT SELECT ON _migrations TO {}")
    status = run_cli("status", "--json", dsn=reader, directory=migrations.path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["schema_changed"] is None
    assert changes_since_last_run(conn, GOOSE_TABLE) is not None  # the owner sees the change
