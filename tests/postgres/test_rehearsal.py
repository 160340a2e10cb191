"""The rehearsal on a real PostgreSQL, through the library and the command line: failures with
their file, statement and line; the locks each statement takes; Down sections; what the scratch
server lacks; the throwaway database dropped whatever happens; the target only ever read."""

from __future__ import annotations

import json
import signal

import psycopg
import pytest

from migrator import Migrator, Options, TableName
from migrator.errors import Failure, ParseError
from migrator.refusals import OutOfOrderRefused
from migrator.rehearsal import DriftCheck, Rehearsal, Replay, limitation, rehearse
from migrator.schema_snapshot import schema_digests
from migrator.statement_locks import RelationLock, StatementLocks
from tests.support import REPO, MigrationDir, modules_after, query, shipped_migrations, tables, versions, wait_until
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import started_migrator
from tests.support.rehearsal_support import (
    SCRATCH_PASSWORD,
    reading_role,
    replayed,
    scratch_server,
    throwaway_databases,
)

GOOSE_TABLE = TableName.parse("_migrations")
USERS = """-- +goose Up
CREATE TABLE users (id bigint PRIMARY KEY, email text);
-- +goose Down
DROP TABLE users;
"""
POSTS = """-- +goose Up
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id), body text);
ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_posts ON posts USING (user_id = 1);
-- +goose Down
DROP TABLE posts;
"""


@pytest.fixture
def applied(conn: psycopg.Connection, migrations: MigrationDir) -> MigrationDir:
    migrations.add("00001_users.sql", USERS)
    migrations.add("00002_posts.sql", POSTS)
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    return migrations


def rehearsed_lines(dsn: str, scratch: str, migrations: MigrationDir) -> list[str]:
    """``rehearse``'s text, from a run that passed."""
    command = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=migrations.path)
    assert command.returncode == 0, command.stderr
    return command.stdout.splitlines()


def target_state(dsn: str) -> tuple[object, ...]:
    """What a rehearsal that wrote to the target would change: versions, ledger, run history,
    schema. (That it cannot write at all is the read-only role's test.)"""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return (
            versions(dsn),
            query(dsn, "SELECT version_id, sha256, state FROM _migrations_ledger ORDER BY 1"),
            query(dsn, "SELECT count(*) FROM pg_class WHERE relname = '_migrations_runs'"),
            schema_digests(conn, GOOSE_TABLE),
        )


FAILURES = {
    "missing column": (
        "-- +goose Up\nALTER TABLE users ADD COLUMN name text;\n\n"
        "CREATE INDEX users_nickname_idx ON users (nickname);\n",
        2,
        4,
        'ERROR: column "nickname" does not exist (SQLSTATE 42703)',
    ),
    "policy that already exists": (
        "-- +goose Up\nCREATE POLICY own_posts ON posts FOR SELECT USING (true);\n",
        1,
        2,
        'ERROR: policy "own_posts" for table "posts" already exists (SQLSTATE 42710)',
    ),
    "foreign key to a missing table": (
        "-- +goose Up\n-- +goose StatementBegin\nALTER TABLE posts\n    ADD COLUMN tag_id int REFERENCES tags (id);\n"
        "-- +goose StatementEnd\n",
        1,
        3,
        'ERROR: relation "tags" does not exist (SQLSTATE 42P01)',
    ),
}


def test_a_syntax_error_is_refused_by_file_and_line_before_a_scratch_database_is_made(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    """PostgreSQL's grammar reads every pending statement when the files are parsed, so a
    syntax error never reaches the scratch server: it is refused as bad input (exit 2)."""
    applied.add("00003_pending.sql", "-- +goose Up\nCREATE TABLE tags (id int);\nCREATE TABEL broken (id int);\n")
    before = target_state(dsn)
    refusal = (
        '00003_pending.sql:3: syntax error at or near "TABEL": PostgreSQL would refuse statement 2 part-way'
        " through the run; fix the SQL"
    )
    with pytest.raises(ParseError) as refused:
        rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert str(refused.value) == refusal
    command = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path)
    assert (command.returncode, command.stderr) == (2, f"migrator: error: {refusal}\n")
    assert target_state(dsn) == before
    assert throwaway_databases(scratch) == []


@pytest.mark.parametrize("cause", list(FAILURES))
def test_each_failure_is_refused_with_its_file_statement_and_line(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir, cause: str
) -> None:
    body, statement, line, reason = FAILURES[cause]
    applied.add("00003_pending.sql", body)
    applied.add("00004_later.sql", "-- +goose Up\nCREATE TABLE later (id int);\n")
    before = target_state(dsn)

    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    message = (
        f"00003_pending.sql (up): statement {statement} (line {line}) failed: {reason}; rolled back: nothing of this"
        " file was applied and version 3 was not recorded"
    )
    assert not found.passed
    assert found.failures == [message]
    (failed,) = found.files
    assert failed.failure == Failure("00003_pending.sql", "up", statement, line, reason, True)
    assert (failed.applied, failed.message, failed.limitation, failed.down) == (False, message, None, None)
    assert [m.filename for m in found.not_run] == ["00004_later.sql"]
    assert found.base.replay.replayed == [1, 2]

    command = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path)
    assert command.returncode == 1
    assert command.stderr == f"migrator: error: rehearsal failed: {message}\n"
    lines = command.stdout.splitlines()
    (failed_line,) = [line for line in lines if line.startswith("FAIL ")]
    assert failed_line.startswith("FAIL 00003_pending.sql (")
    assert failed_line.endswith(f"): {message}")
    assert lines[-1] == "NOT RUN 00004_later.sql"
    assert target_state(dsn) == before
    assert throwaway_databases(scratch) == []


def test_a_passing_rehearsal_prints_each_file_and_the_target_is_left_as_it_was(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add(
        "00003_tags.sql",
        "-- +goose Up\nCREATE TABLE tags (id int PRIMARY KEY, label text);\n\n"
        "ALTER TABLE posts ADD COLUMN tag_id int REFERENCES tags (id);\n"
        "-- +goose Down\nALTER TABLE posts DROP COLUMN tag_id;\nDROP TABLE tags;\n",
    )
    applied.add(
        "00004_index.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY posts_body_idx ON posts (body);\n"
        "-- +goose Down\nDROP INDEX CONCURRENTLY posts_body_idx;\n",
    )
    before = target_state(dsn)
    command = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path)
    assert command.returncode == 0, command.stderr
    assert command.stderr == ""
    lines = command.stdout.splitlines()
    assert lines[0].startswith("-- on the throwaway database migrator_rehearsal_")
    assert lines[0].endswith(
        f" of the scratch server {conn.info.dbname} on 127.0.0.1:{conn.info.port}, dropped afterwards"
    )
    assert lines[1:4] == [
        "-- replayed 2 applied migration(s) in goose's order",
        "drift: none (schemas public)",
        lines[3],
    ]
    assert lines[3].startswith("OK   00003_tags.sql (")
    assert lines[4:7] == [
        "    WARNING statement 2 (line 4): AccessExclusiveLock on table public.posts: reads and writes of it wait"
        " until the file commits",
        "    down: restores the schema its Up started from",
        lines[6],
    ]
    assert lines[6].startswith("OK   00004_index.sql (")
    assert lines[7:] == [
        "    locks: not read (NO TRANSACTION: each statement's locks end with it)",
        "    down: restores the schema its Up started from",
        lines[9],
    ]
    assert lines[9].startswith("migrator: rehearsal passed: 2 pending migration(s) applied (")
    assert target_state(dsn) == before
    assert throwaway_databases(scratch) == []


def test_the_json_document_carries_every_finding_and_the_verdict(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add("00003_email.sql", "-- +goose Up\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\n")
    conn.execute("INSERT INTO users VALUES (1, NULL), (2, 'b@example.org')")
    command = run_cli("rehearse", "--json", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path)
    assert command.returncode == 1
    check = (
        "00003_email.sql: statement 1 (line 2): users: SET NOT NULL on column email: would fail: 1 row(s) have NULL"
        " there"
    )
    assert command.stderr == f"migrator: error: rehearsal failed: {check}\n"
    document = json.loads(command.stdout)
    for volatile in ("database", "seconds"):
        document.pop(volatile)
    (file,) = document.pop("files")
    assert isinstance(file.pop("seconds"), float)
    assert file == {
        "version": 3,
        "name": "00003_email.sql",
        "transaction": True,
        "applied": True,
        "failure": None,
        "message": None,
        "limitation": None,
        "locks": [
            {
                "statement": 1,
                "line": 2,
                "locks": [
                    {
                        "relation": "public.users",
                        "kind": "table",
                        "mode": "AccessExclusiveLock",
                        "blocks": "reads and writes",
                        "blocks_the_table": True,
                    }
                ],
            }
        ],
        "down": {
            "restores": False,
            "failure": None,
            "message": None,
            "leftovers": {
                "schemas": ["public"],
                "missing": [],
                "unexpected": [],
                "different": [
                    {"kind": "column", "identity": "public.users.email", "expected": "text", "found": "text NOT NULL"}
                ],
            },
            "up_again_failure": None,
            "up_again_message": None,
            "not_checked": None,
        },
    }
    assert document == {
        "passed": False,
        "failures": [check],
        "server": f"{conn.info.dbname} on 127.0.0.1:{conn.info.port}",
        "target_version": conn.info.server_version,
        "scratch_version": conn.info.server_version,
        "replay": replayed(1, 2),
        "drift": {"schemas": ["public"], "missing": [], "unexpected": [], "different": []},
        "roles_appeared": [],
        "not_run": [],
        "data_checks": [
            {
                "file": "00003_email.sql",
                "statement": 1,
                "line": 2,
                "table": "users",
                "constraint": "SET NOT NULL on column email",
                "rows": 1,
                "violation": "row(s) have NULL there",
                "verdict": "would fail",
                "note": "",
            }
        ],
    }


def test_each_statement_names_the_locks_it_took_on_relations_that_existed_before_its_file(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir
) -> None:
    applied.add(
        "00003_locks.sql",
        "-- +goose Up\nALTER TABLE users ADD COLUMN nickname text;\n"
        "CREATE INDEX users_nickname_idx ON users (nickname);\n"
        "CREATE TABLE tags (id int);\nINSERT INTO tags VALUES (1);\n"
        "SELECT count(*) FROM posts;\n"
        "ALTER TABLE users ADD COLUMN age int;\n"
        "-- +goose Down\nDROP TABLE tags;\nALTER TABLE users DROP COLUMN age, DROP COLUMN nickname;\n",
    )
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert found.passed, found.failures
    (file,) = found.files
    users = "public.users"
    # CREATE INDEX's ShareLock on users is weaker than what statement 1 holds: nothing new;
    # tags is new; the SELECT takes ACCESS SHARE on posts and its primary key's index.
    assert file.locks == [
        StatementLocks(1, 2, [RelationLock(users, "table", "AccessExclusiveLock")]),
        StatementLocks(
            5,
            6,
            [
                RelationLock("public.posts", "table", "AccessShareLock"),
                RelationLock("public.posts_pkey", "index", "AccessShareLock"),
            ],
        ),
    ]
    assert file.exclusive_locks == [(file.locks[0], RelationLock(users, "table", "AccessExclusiveLock"))]
    assert str(file.locks[0].locks[0]) == "AccessExclusiveLock on table public.users"
    assert RelationLock("public.users_pkey", "index", "AccessExclusiveLock").blocks_the_table is False
    assert RelationLock(users, "table", "ShareLock").blocks_the_table is False
    modes = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock"]
    modes += ["ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]
    assert [RelationLock("public.users_pkey", "index", mode).blocks for mode in modes] == [
        None,
        None,
        None,
        None,
        "writes",
        "writes",
        "writes",
        "reads and writes",
    ]


def test_a_no_transaction_file_reads_no_locks(conn: psycopg.Connection, scratch: str, applied: MigrationDir) -> None:
    applied.add("00003_nt.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nALTER TABLE users ADD COLUMN age int;\n")
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    (file,) = found.files
    assert (file.applied, file.transaction, file.locks) == (True, False, [])


def test_down_sections_run_newest_first_and_each_is_held_to_the_schema_its_up_started_from(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir
) -> None:
    applied.add(
        "00003_restores.sql",
        "-- +goose Up\nCREATE TABLE tags (id int);\n-- +goose Down\nDROP TABLE tags;\n",
    )
    applied.add(
        "00004_lossy.sql",
        "-- +goose Up\nALTER TABLE users ADD COLUMN age int;\nCREATE INDEX users_age_idx ON users (age);\n"
        "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n"
        "-- +goose Down\nDROP INDEX users_age_idx;\n",
    )
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert found.passed
    restores, lossy = (file.down for file in found.files)
    assert restores is not None
    assert lossy is not None
    assert restores.restores
    assert restores.leftovers is not None
    assert not restores.leftovers.found
    assert not lossy.restores
    assert lossy.leftovers is not None
    assert lossy.leftovers.lines() == [
        "unexpected column public.users.age",
        "different column public.posts.body: expected 'text', found 'text NOT NULL'",
    ]
    reason = 'ERROR: column "age" of relation "users" already exists (SQLSTATE 42701)'
    assert lossy.up_again_failure == Failure("00004_lossy.sql", "up", 1, 2, reason, True)
    assert lossy.up_again_message == (
        f"00004_lossy.sql (up): statement 1 (line 2) failed: {reason}; rolled back: nothing of this file was"
        " applied and version 4 was not recorded"
    )
    # Up again goes oldest first, so the earlier file applied again before the lossy one failed.
    assert restores.up_again_failure is None
    assert restores.not_checked is None


def test_down_check_text_and_a_failing_down_stops_the_earlier_ones(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add("00003_tags.sql", "-- +goose Up\nCREATE TABLE tags (id int);\n-- +goose Down\nDROP TABLE tags;\n")
    applied.add(
        "00004_broken_down.sql",
        "-- +goose Up\nCREATE TABLE notes (id int);\n-- +goose Down\nDROP TABLE notes;\nDROP TABLE missing;\n",
    )
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert found.passed  # a deployment runs Up only
    tags, broken = (file.down for file in found.files)
    assert broken is not None
    assert tags is not None
    reason = 'ERROR: table "missing" does not exist (SQLSTATE 42P01)'
    assert broken.failure == Failure("00004_broken_down.sql", "down", 2, 5, reason, True)
    assert broken.message == (
        f"00004_broken_down.sql (down): statement 2 (line 5) failed: {reason}; rolled back: nothing of this file"
        " was applied and version 4 was not removed"
    )
    assert (broken.leftovers, broken.restores) == (None, False)
    assert tags.not_checked == "the Down section of 00004_broken_down.sql failed first"
    assert (tags.failure, tags.leftovers, tags.restores) == (None, None, False)

    text = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path).stdout.splitlines()
    assert "    down / up again: not run: the Down section of 00004_broken_down.sql failed first" in text
    assert f"    down: FAILED {broken.message}" in text


def test_down_sections_that_leave_things_are_named_in_the_text(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add(
        "00003_lossy.sql",
        "-- +goose Up\nALTER TABLE users ADD COLUMN age int;\nALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n"
        "DROP POLICY own_posts ON posts;\n-- +goose Down\n",
    )
    lines = rehearsed_lines(dsn, scratch, applied)
    start = lines.index("    down: does not restore the schema its Up started from:")
    assert lines[start + 1 : start + 5] == [
        "        policy public.posts.own_posts is not brought back",
        "        column public.users.age is left behind",
        "        column public.posts.body is left changed: was 'text', now 'text NOT NULL'",
        lines[start + 4],
    ]
    reason = 'ERROR: column "age" of relation "users" already exists (SQLSTATE 42701)'
    assert lines[start + 4] == (
        f"    up again: FAILED 00003_lossy.sql (up): statement 1 (line 2) failed: {reason}; rolled back: nothing of"
        " this file was applied and version 3 was not recorded"
    )


def test_what_the_scratch_server_lacks_is_named_as_a_limitation_of_the_rehearsal(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    role = f"missing_{conn.info.dbname}"
    applied.add("00003_grant.sql", f"-- +goose Up\nGRANT SELECT ON users TO {role};\n")
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    (file,) = found.files
    assert file.limitation == (
        f"the scratch server has no role {role}: roles belong to a whole server, and the rehearsal creates none."
        f' Create it there as the target\'s server has it (CREATE ROLE "{role}" NOLOGIN), then rehearse again'
    )
    text = run_cli("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path).stdout
    assert f"\n    rehearsal limitation: {file.limitation}\n" in text

    applied.add("00003_grant.sql", "-- +goose Up\nCREATE EXTENSION IF NOT EXISTS no_such_extension;\n")
    (file,) = rehearse(conn, scratch, applied.path, GOOSE_TABLE).files
    assert file.limitation == (
        "the scratch server does not have the extension no_such_extension installed: extensions are installed per"
        " server. Install it there (the version the target has), then rehearse again"
    )


def test_roles_the_migrations_create_need_createrole_and_are_named_as_left_on_the_scratch_server(
    conn: psycopg.Connection, dsn: str, applied: MigrationDir
) -> None:
    role = f"made_{conn.info.dbname}"
    applied.add("00003_role.sql", f"-- +goose Up\nCREATE ROLE {role} NOLOGIN;\nGRANT SELECT ON users TO {role};\n")
    (file,) = rehearse(conn, scratch_server(dsn), applied.path, GOOSE_TABLE).files
    assert file.limitation == (
        "the scratch server's role may not create roles: give it CREATEROLE there, as the target's migrating role"
        " has it, then rehearse again"
    )
    allowed = scratch_server(dsn, "ALTER ROLE {} CREATEROLE")
    try:
        found = rehearse(conn, allowed, applied.path, GOOSE_TABLE)
        assert found.passed, found.failures
        assert found.base.roles_appeared == [role]
        again = rehearse(conn, allowed, applied.path, GOOSE_TABLE)
        (file,) = again.files
        assert file.limitation == (
            f"role {role} already exists on the scratch server: roles outlive the throwaway database, and another"
            " database or an earlier rehearsal's migrations made it. The file fails wherever the role exists"
        )
    finally:
        conn.execute(f"DROP ROLE IF EXISTS {role}; ALTER ROLE scratch_{conn.info.dbname} NOCREATEROLE")


def test_a_failed_replay_leaves_every_pending_file_unrun(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir
) -> None:
    conn.execute("CREATE TABLE made_by_hand (id int)")
    applied.add("00003_copy.sql", "-- +goose Up\nCREATE TABLE copy AS SELECT * FROM made_by_hand;\n")
    Migrator(conn, applied.path, GOOSE_TABLE).up(lock_wait=10)
    applied.add("00004_next.sql", "-- +goose Up\nCREATE TABLE next (id int);\n")
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert not found.base.replay.complete
    assert found.files == []
    assert [m.filename for m in found.not_run] == ["00004_next.sql"]
    assert found.failures == [f"the replay failed: {found.base.replay.message}"]
    assert found.base.drift is None


def test_the_deployments_refusals_come_first(conn: psycopg.Connection, scratch: str, applied: MigrationDir) -> None:
    applied.add("00004_fourth.sql", "-- +goose Up\nCREATE TABLE fourth (id int);\n")
    Migrator(conn, applied.path, GOOSE_TABLE).up(lock_wait=10)
    applied.add("00003_early.sql", "-- +goose Up\nCREATE TABLE early (id int);\n")
    with pytest.raises(OutOfOrderRefused):
        rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    assert throwaway_databases(scratch) == []
    allowed = rehearse(conn, scratch, applied.path, GOOSE_TABLE, options=Options(allow_missing=True))
    assert [file.migration.filename for file in allowed.files] == ["00003_early.sql"]
    up_to = rehearse(conn, scratch, applied.path, GOOSE_TABLE, options=Options(allow_missing=True), up_to=2)
    assert up_to.files == []
    assert up_to.passed


def test_the_target_is_only_read_by_a_role_that_can_only_read(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    assert run_cli("up", dsn=dsn, directory=applied.path).returncode == 0  # the run history exists too
    applied.add(
        "00003_more.sql",
        "-- +goose Up\nALTER TABLE users ADD COLUMN age int;\n"
        "ALTER TABLE users ADD CONSTRAINT adult CHECK (age > 17);\n"
        "-- +goose Down\nALTER TABLE users DROP COLUMN age;\n",
    )
    conn.execute("INSERT INTO users VALUES (1, 'a@example.org')")
    reader = reading_role(dsn)
    with psycopg.connect(reader, autocommit=True) as as_reader, pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_reader.execute("INSERT INTO users VALUES (2, 'b@example.org')")
    before = target_state(dsn)
    rehearsed = run_cli("rehearse", "--scratch-dsn", scratch, dsn=reader, directory=applied.path)
    assert rehearsed.returncode == 0, rehearsed.stderr
    assert "migrator: warning: no privilege to read" not in rehearsed.stderr
    drift = run_cli("drift", "--scratch-dsn", scratch, dsn=reader, directory=applied.path)
    assert drift.returncode == 0, drift.stderr
    assert target_state(dsn) == before
    assert "readonly-pw" not in rehearsed.stdout + rehearsed.stderr + drift.stdout + drift.stderr


def test_interrupted_the_rehearsal_drops_its_database_and_changes_nothing(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add("00003_slow.sql", "-- +goose Up\nSELECT pg_sleep(60);\n")
    before = target_state(dsn)
    with started_migrator("rehearse", "--scratch-dsn", scratch, dsn=dsn, directory=applied.path) as process:
        wait_until(
            "SELECT count(*) > 0 FROM pg_stat_activity a JOIN pg_database d ON d.datname = a.datname"
            f" JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = 'scratch_{conn.info.dbname}'"
            " AND a.query LIKE '%pg_sleep%' AND a.state = 'active'",
            dsn,
        )
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err == (
        "migrator: error: 00003_slow.sql (up): statement 1 (line 2) was interrupted; rolled back: nothing of this"
        " file was applied and version 3 was not recorded\n"
    )
    assert out == ""
    assert throwaway_databases(scratch) == []
    assert target_state(dsn) == before


def test_the_shipped_migrations_rehearse_on_an_empty_database(pg_admin_dsn: str, dsn: str) -> None:
    """Whatever migrations/ holds applies on a scratch server; a file whose Down section is
    empty on purpose is named as not restoring the schema, which is true."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = rehearse(conn, pg_admin_dsn, REPO / "migrations", GOOSE_TABLE)
    assert found.passed, found.failures
    assert [file.migration.version for file in found.files] == [version for version, _ in shipped_migrations()]
    assert all(file.down is not None and file.down.up_again_failure is None for file in found.files)
    assert "_migrations" not in tables(dsn)


def test_a_rehearsal_across_major_versions_says_definitions_may_differ() -> None:
    base = DriftCheck("s", "d", 150004, 160001, Replay([], [], []), None, [], 0.0)
    assert base.versions_differ
    assert not DriftCheck("s", "d", 150004, 150018, Replay([], [], []), None, [], 0.0).versions_differ
    assert Rehearsal(base, [], [], [], 0.0).passed
    assert limitation('ERROR: relation "x" does not exist (SQLSTATE 42P01)') is None


def test_the_scratch_password_never_appears(dsn: str, applied: MigrationDir) -> None:
    unreachable = f"postgresql://scratch:{SCRATCH_PASSWORD}@127.0.0.1:1/postgres?connect_timeout=2"
    refused = run_cli("rehearse", "--scratch-dsn", unreachable, dsn=dsn, directory=applied.path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("migrator: error: cannot connect to postgres on 127.0.0.1:1: ")
    assert SCRATCH_PASSWORD not in refused.stdout + refused.stderr


def test_the_scratch_server_and_excluded_schemas_come_from_their_flags_or_variable() -> None:
    from migrator.cli.arguments import Rehearsing  # noqa: PLC0415
    from migrator.cli.program import parse_arguments  # noqa: PLC0415

    def parse_settings(argv: list[str], environ: dict[str, str]) -> Rehearsing:
        parsed = parse_arguments(argv, environ)[1]
        assert isinstance(parsed, Rehearsing)
        return parsed

    assert parse_settings(["rehearse"], {}).scratch_dsn == ""
    assert parse_settings(["drift"], {"MIGRATOR_SCRATCH_DSN": "postgresql://s/db"}).scratch_dsn == "postgresql://s/db"
    flagged = parse_settings(
        ["--scratch-dsn", "postgresql://flag/db", "drift", "--exclude-schema", "auth", "--exclude-schema", "storage"],
        {"MIGRATOR_SCRATCH_DSN": "postgresql://s/db"},
    )
    assert (flagged.scratch_dsn, flagged.exclude_schemas) == ("postgresql://flag/db", ("auth", "storage"))
    assert parse_settings(["rehearse"], {}).exclude_schemas == ()
    up = parse_arguments(["up"], {"MIGRATOR_SCRATCH_DSN": "postgresql://s/db"})[1]
    assert not hasattr(up, "exclude_schemas")


def test_the_text_names_only_the_locks_that_make_reads_or_writes_wait(
    conn: psycopg.Connection, dsn: str, scratch: str, applied: MigrationDir
) -> None:
    applied.add(
        "00003_index.sql",
        "-- +goose Up\nCREATE INDEX users_email_idx ON users (email);\nSELECT count(*) FROM posts;\n"
        "ALTER TABLE posts ADD COLUMN tag text;\n",
    )
    lines = rehearsed_lines(dsn, scratch, applied)
    start = next(index for index, line in enumerate(lines) if line.startswith("OK   00003_index.sql ("))
    assert lines[start + 1 : start + 3] == [
        "    statement 1 (line 2): ShareLock on table public.users: writes of it wait until the file commits",
        "    WARNING statement 3 (line 4): AccessExclusiveLock on table public.posts: reads and writes of it wait"
        " until the file commits",
    ]
    (file,) = rehearse(conn, scratch, applied.path, GOOSE_TABLE).files
    assert [taken.statement for taken in file.locks] == [1, 2, 3]  # the library keeps ACCESS SHARE too


SEEDED = "-- +goose Up\nINSERT INTO users VALUES (100, NULL);\n-- +goose Down\nDELETE FROM users WHERE id = 100;\n"


@pytest.mark.parametrize("fixed_by_hand", [True, False])
def test_a_failure_on_the_migrations_own_rows_is_told_from_one_on_the_targets(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir, fixed_by_hand: bool
) -> None:
    applied.add("00003_seed.sql", SEEDED)
    Migrator(conn, applied.path, GOOSE_TABLE).up(lock_wait=10)
    if fixed_by_hand:
        conn.execute("UPDATE users SET email = 'fixed@example.org' WHERE email IS NULL")
    # Statement 2's check passes too, but only the failed statement's checks are told.
    applied.add(
        "00004_email.sql",
        "-- +goose Up\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users ADD CHECK (id > 0);\n",
    )
    found = rehearse(conn, scratch, applied.path, GOOSE_TABLE)
    (file,) = found.files
    assert file.failure is not None
    assert file.failure.reason == 'ERROR: column "email" of relation "users" contains null values (SQLSTATE 23502)'
    rows = (
        "the failure depends on rows, and the throwaway database holds only the rows the migrations themselves"
        " inserted, not the target's, which may fail it or pass it either way"
    )
    if fixed_by_hand:
        assert file.limitation == (
            f"{rows}. The target's rows pass that statement's checks (SET NOT NULL on column email on users:"
            " 0 row(s) have NULL there)"
        )
    else:
        assert file.limitation == rows
    assert not found.passed


def test_a_failure_on_rows_no_check_counts_is_told_as_depending_on_rows(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir
) -> None:
    applied.add("00003_seed.sql", "-- +goose Up\nINSERT INTO users VALUES (100, 'long@example.org');\n")
    Migrator(conn, applied.path, GOOSE_TABLE).up(lock_wait=10)
    applied.add("00004_short.sql", "-- +goose Up\nALTER TABLE users ALTER COLUMN email TYPE varchar(4);\n")
    (file,) = rehearse(conn, scratch, applied.path, GOOSE_TABLE).files
    assert file.failure is not None
    assert file.failure.reason == "ERROR: value too long for type character varying(4) (SQLSTATE 22001)"
    assert file.limitation == (
        "the failure depends on rows, and the throwaway database holds only the rows the migrations themselves"
        " inserted, not the target's, which may fail it or pass it either way"
    )


def test_an_extension_the_scratch_role_may_not_create_is_named_as_a_limitation(
    conn: psycopg.Connection, scratch: str, applied: MigrationDir
) -> None:
    applied.add("00003_stats.sql", "-- +goose Up\nCREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n")
    (file,) = rehearse(conn, scratch, applied.path, GOOSE_TABLE).files
    assert file.failure is not None
    assert file.failure.reason.startswith(
        'ERROR: permission denied to create extension "pg_stat_statements" (SQLSTATE 42501)'
    )
    assert file.limitation == (
        "the scratch server's role may not create the extension pg_stat_statements: rehearse with a role that may,"
        " as the target's migrating role may"
    )


def test_a_schema_qualified_goose_table_is_where_the_replay_keeps_it(
    conn: psycopg.Connection, dsn: str, scratch: str, migrations: MigrationDir
) -> None:
    conn.execute("CREATE SCHEMA meta")  # goose's table's schema exists before any run, as goose needs
    migrations.add("00001_users.sql", USERS)
    assert run_cli("--table", "meta._migrations", "up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00002_posts.sql", POSTS)
    found = rehearse(conn, scratch, migrations.path, TableName.parse("meta._migrations"))
    assert found.passed, found.failures
    assert found.base.replay.replayed == [1]
    assert found.base.drift is not None
    assert (found.base.drift.schemas, found.base.drift.lines()) == (["meta", "public"], [])
    assert [file.migration.version for file in found.files] == [2]


def test_the_command_line_starts_without_the_rehearsals_modules() -> None:
    """Every command, the no-op `up` Nomad runs on each allocation included, would pay for
    importing them: only rehearse, drift, status and a migrating run import what they use."""
    loaded = modules_after("import migrator.cli.program")
    modules = ("data_checks", "drift", "rehearsal", "rehearsal_report", "schema_snapshot", "scratch", "statement_locks")
    assert [name for name in loaded if name.removeprefix("migrator.") in modules] == []
    assert "migrator.cli.program" in loaded
