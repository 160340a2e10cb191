"""migrateTo checked while the program runs (infra/schema_target.py), against a real database:
what preview refuses, warns and lists before a deployment rolls anything back. Every test of
schema targets lives here, at three levels: ``check_schema_target`` under Pulumi's mocks, each
check on its own, and the whole program given a stack's config."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pulumi
import pytest
from psycopg import conninfo, sql

from infra import schema_target
from infra.schema_target import SchemaTargetError, announce_rollback, check_known, check_schema_target, rollback_steps
from infra.verdict import READ_TIMEOUT_SECONDS
from migrator.dsn import connect
from migrator.lint import squawk_binary
from migrator.parser import Direction, parse_file
from migrator.source import collect
from tests.support import REPO, Logged, MigrationDir, SessionSpy, login_role, rollback_done, table_file
from tests.support.cli_runner import run_cli
from tests.support.pulumi_harness import run_declarations, staging

UNREACHABLE = "postgresql://api:pw@127.0.0.1:1/api"


def check(
    url: str, root: Path, migrate_to: int, allow_down: bool = False, rollback: pulumi.Input[str] | None = None
) -> None:
    files = collect(root / "migrations")
    run_declarations(
        lambda: check_schema_target(
            pulumi.Output.secret(url), root, files, migrate_to, allow_down, rollback_id=rollback
        ),
        {},
        preview=True,
    )


def unknown() -> pulumi.Output[str]:
    """An output a preview does not know yet: the id of a rollback request about to be created."""
    loop = asyncio.get_event_loop()
    value: asyncio.Future[str] = loop.create_future()
    value.set_result("")
    known: asyncio.Future[bool] = loop.create_future()
    known.set_result(False)
    return pulumi.Output(set(), value, known)


@pytest.fixture
def warned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return Logged(monkeypatch).warn


@pytest.fixture
def applied(dsn: str, migrations: MigrationDir) -> MigrationDir:
    """Three applied files; the last one's Down section drops a column and a table."""
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    migrations.add(
        "00003_c.sql",
        "-- +goose Up\nALTER TABLE a ADD COLUMN note text;\nCREATE TABLE c (id int);\n"
        "-- +goose Down\nALTER TABLE a DROP COLUMN note;\nDROP TABLE c;\n",
    )
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    return migrations


def test_a_rollback_the_stack_does_not_allow_names_the_target_and_every_file(dsn: str, applied: MigrationDir) -> None:
    with pytest.raises(SchemaTargetError) as caught:
        check(dsn, applied.path.parent, 1)
    assert str(caught.value) == (
        "api-migrations:migrateTo 1 is below the database's version 3: going down to it rolls back"
        " 00003_c.sql, 00002_b.sql, which the stack does not allow (the db-migrator task leaves the database as it"
        " is). Set `pulumi config set allowDown true` to let it, after reading what preview lists; or set"
        " migrateTo to 3 or latest"
    )


def test_an_allowed_rollback_lists_each_down_statement_and_squawks_findings_under_the_projects_config(
    dsn: str, applied: MigrationDir, warned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = applied.path.parent
    # The config beside migrations/ is squawk's, as for `lint`; none in the working directory.
    (root / ".squawk.toml").write_text(
        'excluded_rules = ["ban-drop-table", "require-lock-timeout", "require-statement-timeout"]\n'
    )
    monkeypatch.chdir(root)
    assert squawk_binary() is not None, "squawk-cli is a dependency of the program"
    check(dsn, root, 1, allow_down=True)
    listed = [line for line in warned if line.startswith("rollback: ")]
    assert listed == [
        "rollback: 00003_c.sql statement 1 (line 5): ALTER TABLE a DROP COLUMN note;",
        "rollback: 00003_c.sql statement 2 (line 6): DROP TABLE c;",
        "rollback: 00002_b.sql statement 1 (line 4): DROP TABLE b;",
    ]
    findings = [line for line in warned if line.startswith("rollback lint: ")]
    assert len(findings) == 1, findings
    assert findings[0].startswith("rollback lint: 00003_c.sql: statement 1 (line 5): warning ban-drop-column: ")


def test_where_squawk_is_not_installed_the_rollback_is_listed_without_lint(
    dsn: str, applied: MigrationDir, warned: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("migrator.lint.squawk_binary", lambda: None)
    check(dsn, applied.path.parent, 1, allow_down=True)
    assert warned == [
        "rollback: 00003_c.sql statement 1 (line 5): ALTER TABLE a DROP COLUMN note;",
        "rollback: 00003_c.sql statement 2 (line 6): DROP TABLE c;",
        "rollback: 00002_b.sql statement 1 (line 4): DROP TABLE b;",
    ]


def test_a_rollback_runs_once_and_preview_says_which_one_will(
    dsn: str, applied: MigrationDir, warned: list[str]
) -> None:
    root = applied.path.parent
    rollback = ("migrate-to", "1", "--allow-down", "--rollback-id", "done-1")
    assert run_cli(*rollback, dsn=dsn, directory=applied.path).returncode == 0
    assert run_cli("up", dsn=dsn, directory=applied.path).returncode == 0
    check(dsn, root, 1, allow_down=True, rollback="done-1")
    assert len(warned) == 1
    again = re.escape(
        ". To roll back to 1 again, `pulumi up --replace` the rollback request (`pulumi stack --show-urns`)"
    )
    assert re.fullmatch("migrateTo 1: " + rollback_done("done-1", 1, "2, 3") + again, warned[0]), warned[0]
    for new_request in ("another", None):
        warned.clear()
        check(dsn, root, 1, allow_down=True, rollback=unknown() if new_request is None else new_request)
        assert [w for w in warned if w.startswith("rollback: ")] == [
            "rollback: 00003_c.sql statement 1 (line 5): ALTER TABLE a DROP COLUMN note;",
            "rollback: 00003_c.sql statement 2 (line 6): DROP TABLE c;",
            "rollback: 00002_b.sql statement 1 (line 4): DROP TABLE b;",
        ], new_request


def test_a_database_preview_cannot_reach_is_a_warning(tmp_path: Path, warned: list[str]) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "00001_a.sql").write_text(table_file("a"))
    check(UNREACHABLE, tmp_path, 1)
    assert warned == ["migrateTo 1: the database cannot be read from here; rollback not checked"]


def test_a_rollback_the_migrator_would_refuse_fails_the_preview_with_its_reason(
    dsn: str, applied: MigrationDir
) -> None:
    (applied.path / "00002_b.sql").unlink()
    with pytest.raises(SchemaTargetError) as caught:
        check(dsn, applied.path.parent, 1, allow_down=True)
    assert str(caught.value) == (
        "migrateTo 1: the migrator would refuse to roll back:"
        " version 2 is applied but has no migration file to roll it back"
    )


def test_preview_reads_in_a_read_only_session_with_a_short_connect_timeout(
    dsn: str, applied: MigrationDir, session_spy: SessionSpy
) -> None:
    session_spy.watch(schema_target)
    with pytest.raises(SchemaTargetError):
        check(dsn, applied.path.parent, 2)
    assert session_spy.sessions == [{"read_only": "on", "connect_timeout": str(READ_TIMEOUT_SECONDS)}]
    assert READ_TIMEOUT_SECONDS < 10, "shorter than libpq's default the migrator uses"


@pytest.fixture
def goose_table_reader(dsn: str, applied: MigrationDir) -> Iterator[str]:
    """A DSN of a role that may read goose's table and nothing else (not the run history)."""
    reader = login_role(dsn, "reader", "reader-pw", "GRANT SELECT ON _migrations TO {}")
    yield reader
    role = sql.Identifier(str(conninfo.conninfo_to_dict(reader)["user"]))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


def test_a_role_that_can_read_only_the_goose_table_still_sees_the_rollback(
    goose_table_reader: str, applied: MigrationDir
) -> None:
    with pytest.raises(SchemaTargetError, match=r"rolls back 00003_c\.sql, 00002_b\.sql, which"):
        check(goose_table_reader, applied.path.parent, 1)


def test_a_role_that_may_not_read_the_run_history_is_told_the_task_decides_whether_a_rollback_runs(
    goose_table_reader: str, applied: MigrationDir, warned: list[str]
) -> None:
    check(goose_table_reader, applied.path.parent, 1, allow_down=True, rollback="rb-1")
    assert warned[0] == (
        "rollback rb-1: no privilege to read the run history here: whether it ran before is not known; the"
        " db-migrator task knows, and runs it only if it did not"
    )
    assert [w for w in warned if w.startswith("rollback: ")] == [
        "rollback: 00003_c.sql statement 1 (line 5): ALTER TABLE a DROP COLUMN note;",
        "rollback: 00003_c.sql statement 2 (line 6): DROP TABLE c;",
        "rollback: 00002_b.sql statement 1 (line 4): DROP TABLE b;",
    ]


# -- each check on its own ----------------------------------------------------------


@pytest.fixture
def applied_three(dsn: str, migrations: MigrationDir) -> MigrationDir:
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", table_file(name))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    return migrations


def test_an_unknown_version_is_refused(migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    with pytest.raises(SchemaTargetError) as refused:
        check_known(7, collect(migrations.path))
    assert str(refused.value) == (
        "api-migrations:migrateTo 7 is not a version of migrations/ (the image's files);"
        " the image can only move the database to one of its own versions"
    )
    check_known(1, collect(migrations.path))
    check_known(0, collect(migrations.path))  # every version rolled back, as the migrator's migrate-to 0
    check_known(None, collect(migrations.path))


def test_going_down_takes_the_newest_application_first(dsn: str, applied_three: MigrationDir) -> None:
    steps = rollback_steps(connect(dsn), collect(applied_three.path), 1)
    assert steps is not None
    assert [s.migration.filename for s in steps] == ["00003_c.sql", "00002_b.sql"]


def test_going_down_with_allow_down_lists_every_down_statement(
    dsn: str, applied_three: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    steps = rollback_steps(connect(dsn), collect(applied_three.path), 1)
    assert steps is not None
    announce_rollback(steps, 1, applied_three.path)
    rollback = [line for line in warned if line.startswith("rollback: ")]
    assert rollback == [
        "rollback: 00003_c.sql statement 1 (line 4): DROP TABLE c;",
        "rollback: 00002_b.sql statement 1 (line 4): DROP TABLE b;",
    ]


def test_an_empty_down_section_fails_the_preview_naming_it(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_keep.sql", "-- +goose Up\nCREATE TABLE keep (id int);\n-- +goose Down\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    steps = rollback_steps(connect(dsn), collect(migrations.path), 1)
    assert steps is not None
    with pytest.raises(SchemaTargetError, match=r"Down section of 00002_keep\.sql, which has no statement"):
        announce_rollback(steps, 1, migrations.path)


def test_every_empty_down_section_on_the_way_is_named(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_keep.sql", "-- +goose Up\nCREATE TABLE keep (id int);\n-- +goose Down\n")
    migrations.add("00003_also.sql", "-- +goose Up\nCREATE TABLE also (id int);\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    steps = rollback_steps(connect(dsn), collect(migrations.path), 1)
    assert steps is not None
    with pytest.raises(SchemaTargetError) as refused:
        announce_rollback(steps, 1, migrations.path)
    assert str(refused.value) == (
        "rolling back to 1 needs the Down section of 00003_also.sql, 00002_keep.sql, which has no statement:"
        " rolling it back would only forget the version. Write its Down section, or choose a later migrateTo"
    )


def test_the_current_version_or_ahead_needs_no_rollback(dsn: str, applied_three: MigrationDir) -> None:
    assert rollback_steps(connect(dsn), collect(applied_three.path), 3) is None
    applied_three.add("00004_d.sql", table_file("d"))
    assert rollback_steps(connect(dsn), collect(applied_three.path), 4) is None


# -- the whole program: migrateTo in a stack's config ----------------------------------


def test_a_migrate_to_the_image_cannot_reach_is_refused() -> None:
    """Issue 13: refused while the program runs, so `pulumi preview` fails before any change."""
    with pytest.raises(SchemaTargetError, match="migrateTo 1 is not a version of migrations/"):
        staging({"api-migrations:migrateTo": "1"})


def shipped_down_statements() -> tuple[int, list[str]]:
    """Down statements of every shipped file, and the files whose Down section is empty."""
    files = collect(REPO / "migrations")
    downs = {m.filename: parse_file(m.path, Direction.DOWN).statements for m in files}
    return sum(len(s) for s in downs.values()), sorted(name for name, s in downs.items() if not s)


def test_going_below_the_database_without_allow_down_fails_the_preview(dsn: str) -> None:
    """Issue 13: the program reads the database (reportMigrations) and refuses a rollback
    the stack did not allow, before anything is deployed."""
    assert run_cli("up", dsn=dsn, directory=REPO / "migrations").returncode == 0
    stack = {"api-migrations:reportMigrations": "true", "api-migrations:databaseUrl": dsn}
    with pytest.raises(SchemaTargetError, match=r"is below the database's version \d+: going down to it rolls back "):
        staging({**stack, "api-migrations:migrateTo": "0"}, preview=True)


def test_an_allowed_rollback_lists_every_down_statement_or_names_an_empty_one(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli("up", dsn=dsn, directory=REPO / "migrations").returncode == 0
    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    stack = {
        "api-migrations:reportMigrations": "true",
        "api-migrations:databaseUrl": dsn,
        "api-migrations:migrateTo": "0",
        "api-migrations:allowDown": "true",
    }
    statements, empty = shipped_down_statements()
    if empty:  # rolling those back would only forget their versions
        with pytest.raises(SchemaTargetError, match=f"needs the Down section of {empty[-1]}"):
            staging(stack, preview=True)
    else:
        staging(stack, preview=True)
        assert len([line for line in warned if line.startswith("rollback: ")]) == statements
