"""Every command of the contract, run through the command line against a real PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg

from migrator.cli import commands
from tests.support import REPO, MigrationDir, SessionSpy, query, shipped_migrations, table_file, tables, versions
from tests.support.cli_runner import run_cli

USERS = """-- +goose Up
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE INDEX users_name_idx ON users (name);

-- +goose Down
DROP TABLE users;
"""
POSTS = """-- +goose Up
-- +goose StatementBegin
CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users (id), body text);
CREATE FUNCTION post_count() RETURNS bigint AS $$
BEGIN
    RETURN (SELECT count(*) FROM posts);
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION post_count();
DROP TABLE posts;
"""
TAGS = """-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE tags (id int PRIMARY KEY, label text);
CREATE INDEX CONCURRENTLY tags_label_idx ON tags (label);

-- +goose Down
DROP INDEX CONCURRENTLY tags_label_idx;
DROP TABLE tags;
"""

SCHEMA_SNAPSHOT = """
SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relname <> '_migrations' AND c.relname NOT LIKE '\\_migrations%%'
UNION ALL
SELECT p.proname, 'f', '', pg_get_function_identity_arguments(p.oid), false
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
ORDER BY 1, 2, 3
"""


def three(migrations: MigrationDir) -> MigrationDir:
    migrations.add("00001_users.sql", USERS)
    migrations.add("00002_posts.sql", POSTS)
    migrations.add("00003_tags.sql", TAGS)
    return migrations


def schema(dsn: str) -> list[tuple[object, ...]]:
    return query(dsn, SCHEMA_SNAPSHOT)


def test_up_applies_everything_with_goose_output(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [re.sub(r"\(.*\)", "(D)", line) for line in lines] == [
        "OK   00001_users.sql (D)",
        "OK   00002_posts.sql (D)",
        "OK   00003_tags.sql (D)",
        "migrator: successfully migrated database to version: 3",
    ]
    assert all(re.search(r"\(\d+\.\d\dm?s\)$", line) for line in lines[:3])
    assert versions(dsn) == [0, 1, 2, 3]
    assert {"users", "posts", "tags", "_migrations"} <= tables(dsn)
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tags_label_idx'::regclass") == [(True,)]


def test_second_up_changes_nothing(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    before = query(dsn, "SELECT id, version_id, tstamp FROM _migrations ORDER BY id")
    again = run_cli("up", dsn=dsn, directory=migrations.path)
    assert again.returncode == 0
    assert again.stdout.strip() == "migrator: no migrations to run. current version: 3"
    assert query(dsn, "SELECT id, version_id, tstamp FROM _migrations ORDER BY id") == before


def test_up_by_one_and_up_to(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1]
    assert run_cli("up-to", "2", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1, 2]
    bad = run_cli("up-to", "two", dsn=dsn, directory=migrations.path)
    assert bad.returncode == 2
    assert "VERSION must be a whole number written in digits 0-9" in bad.stderr
    empty = run_cli("up-to", "", dsn=dsn, directory=migrations.path)
    assert empty.stderr == "migrator: error: up-to: VERSION must be a whole number written in digits 0-9, got ''\n"
    latest_or_number = run_cli("migrate-to", "lastest", dsn=dsn, directory=migrations.path)
    assert (latest_or_number.returncode, latest_or_number.stderr) == (
        2,
        "migrator: error: migrate-to: VERSION must be a whole number written in digits 0-9, got 'lastest'\n",
    )


def test_down_redo_and_reset_restore_the_schema(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    empty = schema(dsn)
    run_cli("up-to", "2", dsn=dsn, directory=migrations.path)
    after_two = schema(dsn)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    full = schema(dsn)

    down = run_cli("down", dsn=dsn, directory=migrations.path)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[-1] == "migrator: successfully migrated database to version: 2"
    assert schema(dsn) == after_two
    assert versions(dsn) == [0, 1, 2]

    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    redo = run_cli("redo", dsn=dsn, directory=migrations.path)
    assert redo.returncode == 0, redo.stderr
    assert [line.split()[1] for line in redo.stdout.splitlines()[:2]] == ["00003_tags.sql", "00003_tags.sql"]
    assert schema(dsn) == full
    assert versions(dsn)[-1] == 3

    assert run_cli("down-to", "1", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1]
    assert run_cli("reset", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0]
    assert schema(dsn) == empty


def test_status_version_and_plan(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    plan_fresh = run_cli("plan", "--json", dsn=dsn, directory=migrations.path)
    assert plan_fresh.returncode == 0, plan_fresh.stderr
    assert "_migrations" not in tables(dsn), "plan must change nothing"
    pending = json.loads(plan_fresh.stdout)["pending"]
    assert [(p["version"], p["transaction"], len(p["statements"])) for p in pending] == [
        (1, True, 2),
        (2, True, 1),
        (3, False, 2),
    ]

    run_cli("up-to", "2", dsn=dsn, directory=migrations.path)
    status = run_cli("--json", "status", dsn=dsn, directory=migrations.path)  # option before the command
    assert status.stdout.startswith('{\n  "table": "_migrations",\n')  # indented for a reader
    document = json.loads(status.stdout)
    assert document["table"] == "_migrations"
    assert document["current"] == 2
    assert document["pending"] == [3]
    assert document["unknown_applied"] == []
    assert [(m["version"], m["name"], m["applied"]) for m in document["migrations"]] == [
        (1, "00001_users.sql", True),
        (2, "00002_posts.sql", True),
        (3, "00003_tags.sql", False),
    ]
    assert document["migrations"][0]["applied_at"]
    assert document["migrations"][2]["applied_at"] is None

    text = run_cli("status", dsn=dsn, directory=migrations.path).stdout
    assert re.search(r"^    Pending\s+-- 00003_tags.sql$", text, re.M)
    assert re.search(r"^    \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} -- 00001_users.sql$", text, re.M)
    assert run_cli("version", dsn=dsn, directory=migrations.path).stdout.strip() == "migrator: version 2"

    plan = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert [p["version"] for p in plan["pending"]] == [3]


def test_status_text_marks_edited_removed_and_unknown_versions(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00001_users.sql", USERS.replace("name text", "full_name text"))
    (migrations.path / "00002_posts.sql").unlink()
    query(dsn, "INSERT INTO _migrations (version_id, is_applied) VALUES (7, true)")
    status = run_cli("status", dsn=dsn, directory=migrations.path)
    assert status.returncode == 0, status.stderr
    when = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"
    expected = [
        "    Applied At                  Migration",
        "    =======================================",
        rf"    {when} -- 00001_users\.sql  \(EDITED since applied\)",
        rf"    {when} -- 00003_tags\.sql",
        r"    Applied, no file         -- 00002_posts\.sql \(file REMOVED since applied\)",
        r"    Applied, no file         -- version 7",
    ]
    lines = status.stdout.splitlines()
    assert len(lines) == len(expected), status.stdout
    for pattern, line in zip(expected, lines, strict=True):
        assert re.fullmatch(pattern, line), (pattern, line)


def test_show_prints_each_statement_under_its_number_and_line(migrations: MigrationDir) -> None:
    three(migrations)
    shown = run_cli("show", "00003_tags.sql", directory=migrations.path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (
        "-- 00003_tags.sql (up): 2 statement(s), NO TRANSACTION\n"
        "-- statement 1 (line 3)\nCREATE TABLE tags (id int PRIMARY KEY, label text);\n"
        "-- statement 2 (line 4)\nCREATE INDEX CONCURRENTLY tags_label_idx ON tags (label);\n"
    )
    down = run_cli("show", "00002_posts.sql", "--down", directory=migrations.path).stdout
    assert down == (
        "-- 00002_posts.sql (down): 2 statement(s), in one transaction\n"
        "-- statement 1 (line 12)\nDROP FUNCTION post_count();\n-- statement 2 (line 13)\nDROP TABLE posts;\n"
    )


def test_show_validate_create_and_fix(migrations: MigrationDir) -> None:
    three(migrations)
    shown = json.loads(run_cli("show", "00003_tags.sql", "--json", directory=migrations.path).stdout)
    assert shown == {
        "statements": [
            "CREATE TABLE tags (id int PRIMARY KEY, label text);",
            "CREATE INDEX CONCURRENTLY tags_label_idx ON tags (label);",
        ],
        "transaction": False,
        "transaction_ends": [],
    }
    down = json.loads(run_cli("show", str(migrations.path / "00002_posts.sql"), "--down", "--json").stdout)
    assert down == {
        "statements": ["DROP FUNCTION post_count();", "DROP TABLE posts;"],
        "transaction": True,
        "transaction_ends": [],
    }

    assert run_cli("validate", directory=migrations.path).returncode == 0
    created = run_cli("create", "AddAuditLog", directory=migrations.path)
    assert created.returncode == 0, created.stderr
    stamped = [p for p in migrations.path.glob("*_add_audit_log.sql")]
    assert len(stamped) == 1
    assert re.fullmatch(r"\d{14}_add_audit_log\.sql", stamped[0].name)
    assert run_cli("validate", directory=migrations.path).returncode == 0

    template = stamped[0].read_text()
    fixed = run_cli("fix", directory=migrations.path)
    assert fixed.returncode == 0
    assert fixed.stdout.strip() == f"RENAMED {stamped[0].name} => 00004_add_audit_log.sql"
    assert (migrations.path / "00004_add_audit_log.sql").read_text() == template
    assert not stamped[0].exists()
    sequential = run_cli("create", "-s", "next one", directory=migrations.path)
    assert sequential.returncode == 0
    assert (migrations.path / "00005_next_one.sql").is_file()


def test_validate_counts_the_files_that_do_not_parse_and_names_drift(
    dsn: str, migrations: MigrationDir, session_spy: SessionSpy
) -> None:
    migrations.add("00001_users.sql", USERS)
    migrations.add("00002_posts.sql", POSTS)
    assert run_cli("validate", directory=migrations.path).stdout == "migrator: 2 migration(s) valid\n"
    session_spy.watch(commands)
    checked = run_cli("validate", dsn=dsn, directory=migrations.path)
    assert checked.stdout == "migrator: 2 migration(s) valid and checked against the database\n"
    assert [session["read_only"] for session in session_spy.sessions] == ["on"]
    assert "_migrations" not in tables(dsn)

    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00002_posts.sql", POSTS.replace("body text", "body varchar(500)"))
    migrations.add("00003_bad.sql", "SELECT 1;\n")
    migrations.add("00004_bad_too.sql", "-- +goose Down\nSELECT 1;\n")
    both = run_cli("validate", dsn=dsn, directory=migrations.path)
    assert both.returncode == 2
    *problems, summary = both.stderr.splitlines()
    assert summary == "migrator: error: 2 of 4 migration(s) do not parse; applied files were edited or removed"
    assert problems[-1].startswith("migrator: 00002_posts.sql was edited after it was applied")
    files_only = run_cli("validate", directory=migrations.path)
    assert files_only.stderr.splitlines()[-1] == "migrator: error: 2 of 4 migration(s) do not parse"

    (migrations.path / "00003_bad.sql").unlink()
    (migrations.path / "00004_bad_too.sql").unlink()
    drift_only = run_cli("validate", dsn=dsn, directory=migrations.path)
    assert drift_only.stderr.splitlines()[-1] == "migrator: error: applied files were edited or removed"


def test_redo_is_recorded_and_may_accept_an_edit(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert run_cli("redo", dsn=dsn, directory=migrations.path).returncode == 0
    runs = json.loads(run_cli("history", "--json", dsn=dsn, directory=migrations.path).stdout)["runs"]
    assert (runs[0]["command"], runs[0]["outcome"]) == ("redo", "succeeded")

    migrations.add("00002_b.sql", "-- +goose Up\nCREATE TABLE b (id int, note text);\n-- +goose Down\nDROP TABLE b;\n")
    refused = run_cli("redo", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00002_b.sql was edited after it was applied" in refused.stderr
    accepted = run_cli("redo", "--accept-edited", dsn=dsn, directory=migrations.path)
    assert accepted.returncode == 0, accepted.stderr
    assert query(dsn, "SELECT column_name FROM information_schema.columns WHERE table_name = 'b' ORDER BY 1") == [
        ("id",),
        ("note",),
    ]


def test_a_database_goose_migrated_is_read_and_continued(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    # Exactly what goose leaves behind after applying 1 and 2.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE _migrations (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,"
            " version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO _migrations (version_id, is_applied) VALUES (0, true), (1, true), (2, true)")
        conn.execute(USERS.split("-- +goose Up\n")[1].split("-- +goose Down", maxsplit=1)[0])
        conn.execute(
            "CREATE TABLE posts (id int PRIMARY KEY);"
            " CREATE FUNCTION post_count() RETURNS int AS 'SELECT 1' LANGUAGE sql"
        )
    status = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert status["current"] == 2
    assert status["pending"] == [3]
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "migrator: recorded checksums of 2 migration(s) applied before checksums existed"
    assert lines[1].startswith("OK   00003_tags.sql")
    assert query(dsn, "SELECT version_id, is_applied FROM _migrations ORDER BY id") == [
        (0, True), (1, True), (2, True), (3, True),
    ]  # fmt: skip
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1, 2]


def test_rows_of_old_goose_rollbacks_count_as_not_applied(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    run_cli("up-to", "1", dsn=dsn, directory=migrations.path)
    query(dsn, "INSERT INTO _migrations (version_id, is_applied) VALUES (2, true), (2, false)")
    status = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert status["current"] == 1
    assert status["pending"] == [2, 3]


def test_pending_file_older_than_current_needs_allow_missing(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    (migrations.path / "00002_posts.sql").rename(migrations.path / "posts.hold")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    (migrations.path / "posts.hold").rename(migrations.path / "00002_posts.sql")

    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00002_posts.sql" in refused.stderr
    assert "--allow-missing" in refused.stderr
    assert versions(dsn) == [0, 1, 3]
    assert run_cli("plan", dsn=dsn, directory=migrations.path).returncode == 2

    allowed = run_cli("up", "--allow-missing", dsn=dsn, directory=migrations.path)
    assert allowed.returncode == 0, allowed.stderr
    assert versions(dsn) == [0, 1, 3, 2]
    assert "posts" in tables(dsn)


def test_schema_qualified_table_from_goose_table_env(dsn: str, migrations: MigrationDir) -> None:
    three(migrations)
    query(dsn, "CREATE SCHEMA ops")
    result = run_cli("up", dsn=dsn, directory=migrations.path, env={"GOOSE_TABLE": "ops.Goose_Versions"})
    assert result.returncode == 0, result.stderr
    assert versions(dsn, "ops.goose_versions") == [0, 1, 2, 3]
    assert "_migrations" not in tables(dsn)
    # The migrator's own tables stand beside goose's, in its schema, named after it.
    assert query(
        dsn,
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name LIKE %s ORDER BY 2",
        ("goose_versions%",),
    ) == [("ops", "goose_versions"), ("ops", "goose_versions_ledger"), ("ops", "goose_versions_runs")]


def test_the_shipped_migrations_apply_and_roll_back(dsn: str) -> None:
    """Whatever migrations/ holds applies on an empty database, is then up to date, and resets to 0."""
    shipped = REPO / "migrations"
    up = run_cli("up", dsn=dsn, directory=shipped)
    assert up.returncode == 0, up.stderr
    assert versions(dsn) == [0] + [version for version, _ in shipped_migrations()]
    assert json.loads(run_cli("plan", "--json", dsn=dsn, directory=shipped).stdout)["pending"] == []
    reset = run_cli("reset", dsn=dsn, directory=shipped)
    assert reset.returncode == 0, reset.stderr
    assert versions(dsn) == [0]
    assert all(Path(p).suffix == ".sql" for p in shipped.iterdir())
