"""The status provider and preview-time pending detection against a real database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra import migration_status, verdict
from infra.migration_status import (
    MigrationStatusProvider,
    MigratorWouldRefuse,
    applied_versions,
    lint_warnings,
    pending_migrations,
    read_database,
)
from infra.verdict import READ_TIMEOUT_SECONDS, MigrationVerdictError
from migrator.errors import InputError
from migrator.source import collect
from tests.support import REPO, Logged, MigrationDir, SessionSpy, query, tables
from tests.support.cli_runner import run_cli
from tests.support.pulumi_harness import Recorder

THREE = {f"0000{v}_m{v}.sql": f"-- +goose Up\nCREATE TABLE m{v} (id int);\n" for v in (1, 2, 3)}


def outs(result: CreateResult | ReadResult | UpdateResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def props(dsn: str, migrations_hash: str = "h1", table: str = "_migrations") -> dict[str, object]:
    return {
        "database_url": dsn,
        "table": table,
        "versions": [1, 2, 3],
        "migrations_hash": migrations_hash,
        "job_id": "api",
    }


def test_provider_reports_exactly_the_applied_and_pending_versions(dsn: str, migrations: MigrationDir) -> None:
    for name, body in THREE.items():
        migrations.add(name, body)
    provider = MigrationStatusProvider()
    fresh = outs(provider.create(props(dsn)))
    assert (fresh["applied"], fresh["latest"], fresh["pending"], fresh["error"]) == ([], 0, [1, 2, 3], None)

    assert run_cli("up-to", "2", dsn=dsn, directory=migrations.path).returncode == 0
    read = outs(provider.read("migration-status", fresh))
    assert (read["applied"], read["latest"], read["pending"]) == ([1, 2], 2, [3])

    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    updated = outs(provider.update("migration-status", props(dsn), props(dsn, "h2")))
    assert (updated["applied"], updated["latest"], updated["pending"]) == ([1, 2, 3], 3, [])


def test_every_up_reads_the_database_again(dsn: str, migrations: MigrationDir) -> None:
    """Item 12: nothing in the program changed, the database did (out of band, or it was
    unreadable last time): the refresh every `up` starts with re-reads it, and an unchanged
    stack still previews no changes."""
    for name, body in THREE.items():
        migrations.add(name, body)
    provider = MigrationStatusProvider()
    earlier = outs(provider.create(props("postgresql://api:pw@127.0.0.1:1/api")))
    assert earlier["error"] is not None
    assert earlier["applied"] == []

    assert outs(provider.read("migration-status", props(dsn)))["applied"] == []
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0  # out of band
    again = outs(provider.read("migration-status", props(dsn)))
    assert (again["applied"], again["pending"], again["error"]) == ([1], [2, 3], None)
    assert provider.diff("migration-status", props(dsn), props(dsn)).changes is False
    assert provider.diff("migration-status", props(dsn), {**props(dsn), "migrations_hash": "h2"}).changes is True
    assert yaml.safe_load((REPO / "Pulumi.yaml").read_text())["options"]["refresh"] == "always"


def test_applied_follows_gooses_newest_row_rule_and_reads_only(dsn: str) -> None:
    assert applied_versions(dsn) == ([], None)
    assert "_migrations" not in tables(dsn), "reading never creates the table"
    query(dsn, "CREATE SCHEMA app")
    query(
        dsn,
        "CREATE TABLE app.versions (id serial PRIMARY KEY, version_id bigint NOT NULL,"
        " is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())",
    )
    rows = [(0, True), (5, True), (7, True), (7, False), (9, False), (9, True)]
    for version, applied in rows:
        query(dsn, "INSERT INTO app.versions (version_id, is_applied) VALUES (%s, %s)", (version, applied))
    assert applied_versions(dsn, "app.versions") == ([5, 9], None)


def test_unreachable_database_is_an_error_field_without_the_password() -> None:
    got = outs(MigrationStatusProvider().create(props("postgresql://u:Sup3rS3cret@127.0.0.1:1/x")))
    assert got["applied"] == []
    assert got["latest"] == 0
    assert "cannot connect" in got["error"]
    assert "Sup3rS3cret" not in got["error"]


def test_pending_lists_exactly_the_unapplied_files(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    for name, body in THREE.items():
        (tmp_path / "migrations" / name).write_text(body)
    assert run_cli("up-by-one", dsn=dsn, directory=tmp_path / "migrations").returncode == 0
    reading = read_database(dsn, collect(tmp_path / "migrations"))
    assert [m.version for m in reading.pending] == [2, 3]
    assert reading.applied == [1]

    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    pulumi.runtime.set_mocks(Recorder(), project="api-migrations", stack="test", preview=True)

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        return pending_migrations(pulumi.Output.secret(dsn), tmp_path).apply(lambda got: assert_equal(got, [2, 3]))

    check()
    assert logged[-2:] == ["pending migration: 00002_m2.sql", "pending migration: 00003_m3.sql"]
    assert logged[0].startswith("last migrator run ")
    assert ": succeeded (up-by-one" in logged[0]


def assert_equal(got: object, expected: object) -> None:
    assert got == expected


def test_reading_says_why_the_next_up_would_refuse(dsn: str, migrations: MigrationDir) -> None:
    edited = migrations.add("00001_m1.sql", THREE["00001_m1.sql"])
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert read_database(dsn, collect(migrations.path)).refusal is None
    edited.write_text(THREE["00001_m1.sql"] + "-- a change\n")
    refusal = read_database(dsn, collect(migrations.path)).refusal
    assert refusal is not None
    assert "00001_m1.sql was edited after it was applied" in refusal


def test_reading_plans_envsub_files_with_the_programs_environment(
    dsn: str, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.add("00001_m1.sql", "-- +goose ENVSUB ON\n-- +goose Up\nCREATE TABLE ${NAME} (id int);\n")
    monkeypatch.setenv("NAME", "m1")
    reading = read_database(dsn, collect(migrations.path))
    assert ([m.version for m in reading.pending], reading.refusal) == ([1], None)


def test_reading_plans_only_up_to_the_stack_s_target(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_m1.sql", THREE["00001_m1.sql"])
    migrations.add("00002_vacuum.sql", "-- +goose Up\nVACUUM;\n")
    assert read_database(dsn, collect(migrations.path), migrate_to=1).refusal is None
    refusal = read_database(dsn, collect(migrations.path)).refusal
    assert refusal is not None
    assert refusal.startswith("00002_vacuum.sql:2: VACUUM cannot run inside a transaction block"), refusal


def test_the_shipped_migration_is_pending_on_an_empty_database(dsn: str) -> None:
    reading = read_database(dsn, collect(REPO / "migrations"))
    assert reading.error is None
    assert reading.applied == []
    assert [m.filename for m in reading.pending] == sorted(p.name for p in (REPO / "migrations").glob("*.sql"))


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        (RuntimeError("the server said no to Sup3rS3cret"), "RuntimeError: the server said no to "),
        (InputError("cannot use Sup3rS3cret here"), "cannot use "),
    ],
)
def test_any_failure_to_read_is_a_redacted_error_naming_its_kind(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, shown: str
) -> None:
    """A driver failure keeps its type name; the migrator's own errors are already sentences."""

    def fail(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(migration_status, "connect", fail)
    applied, error = applied_versions("postgresql://u:Sup3rS3cret@127.0.0.1:1/x")
    assert applied == []
    assert error is not None
    assert error.startswith(shown)
    assert "Sup3rS3cret" not in error


def test_a_refresh_keeps_the_resources_id() -> None:
    """An id of None would tell the engine the resource is gone."""
    read = MigrationStatusProvider().read("status-id", props("postgresql://u:pw@127.0.0.1:1/x"))
    assert read.id == "status-id"


def preview_pending(database_url: str, root: Path, migrate_to: int | None = None) -> list[int]:
    pulumi.runtime.set_mocks(Recorder(), project="api-migrations", stack="test", preview=True)
    found: list[list[int]] = []

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        return pending_migrations(pulumi.Output.secret(database_url), root, migrate_to).apply(found.append)

    check()
    return found[0]


def test_preview_stops_at_migrate_to_inclusive(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    for name, body in THREE.items():
        (tmp_path / "migrations" / name).write_text(body)
    logged = Logged(monkeypatch)
    assert preview_pending(dsn, tmp_path, migrate_to=2) == [1, 2]
    assert logged.info == ["pending migration: 00001_m1.sql", "pending migration: 00002_m2.sql"]
    linted = {line.split(":")[1].strip() for line in logged.warn}
    assert linted == {"00001_m1.sql", "00002_m2.sql"}, "squawk reads exactly the files the next run applies"


def test_preview_warns_of_a_failed_run_and_lint(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "00001_m1.sql").write_text(THREE["00001_m1.sql"])
    (directory / "00002_risky.sql").write_text("-- +goose Up\nALTER TABLE m1 ADD COLUMN email text NOT NULL;\n")
    (directory / "00003_broken.sql").write_text("-- +goose Up\nSELECT 1 / 0;\n")
    assert run_cli("up", dsn=dsn, directory=directory).returncode == 1
    logged = Logged(monkeypatch)

    assert preview_pending(dsn, tmp_path) == [3]
    assert logged.warn[0].startswith("last migrator run ")
    assert ": failed (up, image ?): 00003_broken.sql (up): statement 1 (line 2) failed" in logged.warn[0]
    assert logged.info == ["pending migration: 00003_broken.sql"]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("edit", "00002_m2.sql was edited after it was applied. Restore the applied file(s)"),
        ("remove", "00002_m2.sql (version 2) was applied but its file is gone. Restore the applied file(s)"),
        ("older", "1 pending migration(s) older than the highest applied version 3: 00001_m1.sql; apply them"),
        ("unparsable", "00005_bad.sql:1: SQL before the '-- +goose Up' annotation"),
        ("go", "00005_backfill.go: version 5 is a Go migration, and this command would have to apply it"),
    ],
)
def test_preview_refuses_an_image_whose_migrator_would_refuse(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, refusal: str
) -> None:
    """Item 4: refused, not warned about: its db-migrator task would fail every allocation."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name in ("00002_m2.sql", "00003_m3.sql"):
        (directory / name).write_text(THREE[name])
    assert run_cli("up", dsn=dsn, directory=directory).returncode == 0
    (directory / "00004_m4.sql").write_text("-- +goose Up\nCREATE TABLE m4 (id int);\n")
    if change == "edit":
        (directory / "00002_m2.sql").write_text(THREE["00002_m2.sql"] + "-- edited\n")
    elif change == "remove":
        (directory / "00002_m2.sql").unlink()
    elif change == "older":
        (directory / "00001_m1.sql").write_text(THREE["00001_m1.sql"])
    elif change == "go":
        (directory / "00005_backfill.go").write_text("package migrations\n")
    else:
        (directory / "00005_bad.sql").write_text("SELECT 1;\n")
    Logged(monkeypatch)
    with pytest.raises(MigratorWouldRefuse) as refused:
        preview_pending(dsn, tmp_path)
    message = str(refused.value)
    assert message.startswith(f"the db-migrator task of this image would refuse to run: {refusal}"), message
    assert message.endswith(". Nothing is deployed until the database or migrations/ is fixed")
    assert run_cli("migrate-to", "latest", dsn=dsn, directory=directory).returncode == 2, "as the migrator does"


def test_preview_of_an_image_behind_the_database_warns_and_applies_nothing(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, body in THREE.items():
        (directory / name).write_text(body)
    assert run_cli("up", dsn=dsn, directory=directory).returncode == 0
    (directory / "00003_m3.sql").unlink()  # an older image: a newer one applied version 3
    logged = Logged(monkeypatch)
    assert preview_pending(dsn, tmp_path) == []
    assert logged.warn == [
        "migration status: the database is ahead of these migrations: version(s) 3 applied beyond the newest file"
        " (2), by a newer image; nothing of them to apply or roll back"
    ]


def test_preview_warns_when_the_database_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    logged = Logged(monkeypatch)
    assert preview_pending("postgresql://u:Sup3rS3cret@127.0.0.1:1/x", tmp_path) == []
    assert len(logged.warn) == 1
    assert logged.warn[0].startswith("migration status: cannot read the database from here: cannot connect")
    assert "Sup3rS3cret" not in logged.warn[0]


# -- the provider's inputs, sessions and waits --------------------------------------------

IMAGE = "registry.test/db-migrator@sha256:" + "ab" * 32
UNREACHABLE = "postgresql://u:Sup3rS3cret@127.0.0.1:1/x"


DEPLOYMENT = "deployment-1"


def deployment(
    dsn: str, key: str | None = DEPLOYMENT, wait_seconds: int = 0, table: str = "_migrations", attempts: int = 3
) -> dict[str, Any]:
    return {
        **props(dsn, table=table),
        "migrator_image": IMAGE,
        "deployment": key,
        "attempts": attempts,
        "first_run_seconds": wait_seconds,
        "retry_seconds": 600,
        "wait_seconds": wait_seconds,
    }


def run_image(dsn: str, migrations: MigrationDir, allocation: str, *args: str) -> int:
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": allocation, "MIGRATOR_DEPLOYMENT": DEPLOYMENT}
    return run_cli(*args, "up", dsn=dsn, directory=migrations.path, env=env).returncode


def test_the_provider_reads_the_stacks_table_in_short_read_only_sessions(
    dsn: str, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, body in THREE.items():
        migrations.add(name, body)
    assert run_image(dsn, migrations, "alloc-1", "--table", "deploy_versions") == 0
    status_reads, verdict_reads = SessionSpy(monkeypatch), SessionSpy(monkeypatch)
    status_reads.watch(migration_status)
    verdict_reads.watch(verdict)
    provider = MigrationStatusProvider()
    inputs = deployment(dsn, wait_seconds=2, table="deploy_versions")
    created = provider.create(inputs)
    assert created.id == "migration-status"
    for result in (created, provider.read("migration-status", inputs)):
        got = outs(result)
        assert (got["applied"], got["latest"], got["pending"], got["error"]) == ([1, 2, 3], 3, [], None)
        assert (got["last_run"]["allocation"], got["last_run"]["outcome"]) == ("alloc-1", "succeeded")
    assert status_reads.sessions
    assert {(s["read_only"], s["connect_timeout"]) for s in status_reads.sessions} == {
        ("on", str(READ_TIMEOUT_SECONDS))
    }
    assert verdict_reads.sessions
    assert {s["read_only"] for s in verdict_reads.sessions} == {"on"}


def test_a_new_status_fails_when_its_deployments_run_failed(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "-- +goose Up\nSELECT 1 / 0;\n")
    assert run_image(dsn, migrations, "alloc-1") == 1
    with pytest.raises(MigrationVerdictError, match=r"db-migrator failed in Nomad allocation alloc-1: 00001_bad\.sql"):
        MigrationStatusProvider().create(deployment(dsn, wait_seconds=2, attempts=1))


def test_an_update_waits_for_a_run_exactly_when_the_deployment_changes(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_m1.sql", THREE["00001_m1.sql"])
    assert run_image(dsn, migrations, "earlier") == 0
    provider = MigrationStatusProvider()
    olds = deployment(dsn, wait_seconds=1)
    unchanged = outs(provider.update("migration-status", olds, dict(olds)))
    assert unchanged["last_run"]["allocation"] == "earlier"
    # What the migrator runs changed: Nomad runs it again, and only a run of that deployment counts.
    with pytest.raises(MigrationVerdictError, match=re.escape("no run of this deployment's db-migrator")):
        provider.update("migration-status", olds, {**olds, "deployment": "deployment-2"})


@pytest.mark.parametrize(("key", "wait_seconds"), [(None, 30), (DEPLOYMENT, 0)], ids=["no deployment", "no deadline"])
def test_no_wait_without_a_deployment_and_a_deadline(dsn: str, key: str | None, wait_seconds: int) -> None:
    got = outs(MigrationStatusProvider().create(deployment(dsn, key, wait_seconds)))
    assert (got["applied"], got["last_run"], got["error"]) == ([], None, None)


def test_an_unreadable_database_has_nothing_pending(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    got = outs(MigrationStatusProvider().read("migration-status", props(UNREACHABLE)))
    assert (got["applied"], got["pending"]) == ([], [])
    assert got["error"].startswith("cannot connect")
    reading = read_database(UNREACHABLE, [])
    assert (reading.applied, reading.pending, reading.refusal) == ([], [], None)
    assert reading.error is not None
    assert "Sup3rS3cret" not in reading.error

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the server said no to Sup3rS3cret")

    monkeypatch.setattr(migration_status, "connect", fail)
    assert read_database(UNREACHABLE, []).error == "RuntimeError: the server said no to ********"


def test_read_database_uses_a_short_read_only_session(
    dsn: str, migrations: MigrationDir, session_spy: SessionSpy
) -> None:
    migrations.add("00001_m1.sql", THREE["00001_m1.sql"])
    session_spy.watch(migration_status)
    assert [m.version for m in read_database(dsn, collect(migrations.path)).pending] == [1]
    assert session_spy.sessions == [{"read_only": "on", "connect_timeout": str(READ_TIMEOUT_SECONDS)}]


def test_pending_files_are_linted_with_the_projects_config(
    tmp_path: Path, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nALTER TABLE a DROP COLUMN b;\nDROP TABLE c;\n")
    (tmp_path / ".squawk.toml").write_text(
        'excluded_rules = ["ban-drop-table", "require-lock-timeout", "require-statement-timeout"]\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no config here: the one beside migrations/ applies
    warnings = lint_warnings(collect(migrations.path), migrations.path)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("migration lint: 00001_a.sql: statement 1 (line 2): warning ban-drop-column: ")
    assert not warnings[0].endswith(")"), "squawk gives this rule no advice: nothing in parentheses"
    monkeypatch.setattr("migrator.lint.squawk_binary", lambda: None)
    assert lint_warnings(collect(migrations.path), migrations.path) == [
        "migration lint: squawk is not installed here, pending migrations were not linted"
    ]


def test_an_interrupted_last_run_is_a_warning(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "00001_m1.sql").write_text(THREE["00001_m1.sql"])
    assert run_cli("up", dsn=dsn, directory=directory).returncode == 0
    query(dsn, "UPDATE _migrations_runs SET outcome = 'interrupted'")
    logged = Logged(monkeypatch)
    assert preview_pending(dsn, tmp_path) == []
    assert len(logged.warn) == 1
    assert logged.warn[0].startswith("last migrator run ")
    assert ": interrupted (up, image ?)" in logged.warn[0]
    assert not [line for line in logged.info if line.startswith("last migrator run")]


@pytest.mark.parametrize(
    ("files", "info"),
    [
        (
            {
                "00001_m1.sql": "-- +goose Up\nCREATE TABLE m1 (id int);\nCOMMIT;\n",
                "00002_m2.sql": "-- +goose Up\nCREATE TABLE m2 (id int);\n",
            },
            [
                "pending migration: 00001_m1.sql (its own COMMIT at line 3 (statement 2) ends the transaction it runs"
                " in: as goose does, the migrator commits statements 1 to 2 there and records the version after it,"
                " outside that transaction)",
                "pending migration: 00002_m2.sql",
            ],
        ),
    ],
    ids=["a file that ends its own transaction"],
)
def test_preview_says_how_a_pending_file_runs_where_goose_runs_it_unlike_the_rest(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], info: list[str]
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, body in files.items():
        (directory / name).write_text(body)
    logged = Logged(monkeypatch)
    assert preview_pending(dsn, tmp_path) == [1, 2]
    assert logged.info == info
    linted = {line.split(":")[1].strip() for line in logged.warn}
    assert linted == {name for name in files if name.endswith(".sql")}  # squawk reads the SQL files only


def test_preview_expands_envsub_lines_from_the_programs_environment(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library reads no environment itself: the Pulumi program hands it its own, as the
    preview did before, so a file whose COMMIT comes from a variable is described as it runs."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    body = "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE m1 (id int);\n${END_WITH};\n"
    (directory / "00001_m1.sql").write_text(body)
    monkeypatch.setenv("END_WITH", "COMMIT")
    logged = Logged(monkeypatch)
    assert preview_pending(dsn, tmp_path) == [1]
    assert logged.info == [
        "pending migration: 00001_m1.sql (its own COMMIT at line 4 (statement 2) ends the transaction it runs"
        " in: as goose does, the migrator commits statements 1 to 2 there and records the version after it,"
        " outside that transaction)"
    ]
