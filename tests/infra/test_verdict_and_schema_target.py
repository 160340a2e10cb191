"""`pulumi up` learns the migrator's verdict from the database, and `migrateTo` is checked at
preview: the status provider and the program's checks against a real PostgreSQL. The
verdict's rules, run by run, are in tests/infra/test_verdict.py and tests/infra/test_lifecycle.py."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pulumi
import pytest
from psycopg import conninfo

from infra.migration_status import MigrationStatusProvider
from infra.schema_target import SchemaTargetError, announce_rollback, check_known, rollback_steps
from infra.verdict import LOGS_COMMAND, MigrationVerdictError, describe
from migrator.dsn import connect
from migrator.history import Run
from migrator.source import collect
from tests.support import MigrationDir, table_file
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import run_migrator

IMAGE = "registry.test/db-migrator@sha256:" + "cd" * 32
OLD_IMAGE = "registry.test/db-migrator@sha256:" + "01" * 32
DEPLOYMENT, OLD_DEPLOYMENT = "d" * 64, "0" * 64


def props(
    dsn: str, image: str, deployment: str, *, first_run: int = 30, attempts: int = 3, retry: int = 600
) -> dict[str, Any]:
    return {
        "database_url": dsn,
        "table": "_migrations",
        "versions": [1, 2],
        "migrations_hash": image[-8:],
        "migrator_image": image,
        "deployment": deployment,
        "attempts": attempts,
        "first_run_seconds": first_run,
        "retry_seconds": retry,
        "wait_seconds": 120,
    }


def deploy_later(dsn: str, migrations: MigrationDir, image: str, delay: float = 1.0) -> threading.Thread:
    """Nomad's prestart run of ``image``'s deployment, started while the status provider waits."""

    def run() -> None:
        time.sleep(delay)
        env = {"MIGRATOR_IMAGE": image, "NOMAD_ALLOC_ID": "4f2a9c1e-alloc", "MIGRATOR_DEPLOYMENT": DEPLOYMENT}
        run_migrator("migrate-to", "latest", dsn=dsn, directory=migrations.path, env=env)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# -- the verdict -------------------------------------------------------------------------


def test_a_successful_run_of_this_image_ends_the_wait_with_the_applied_versions(
    dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    deployment = deploy_later(dsn, migrations, IMAGE)
    result = MigrationStatusProvider().update(
        "migration-status", props(dsn, OLD_IMAGE, OLD_DEPLOYMENT), props(dsn, IMAGE, DEPLOYMENT)
    )
    deployment.join()
    assert result.outs is not None
    assert (result.outs["applied"], result.outs["pending"]) == ([1, 2], [])
    last = result.outs["last_run"]
    assert (last["outcome"], last["image"], last["allocation"], last["applied"]) == (
        "succeeded",
        IMAGE,
        "4f2a9c1e-alloc",
        [1, 2],
    )


def test_a_final_failure_fails_with_the_migrators_own_message(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_bad.sql", "-- +goose Up\nCREATE TABLE b (id int);\nSELECT 1 / 0;\n")
    deployment = deploy_later(dsn, migrations, IMAGE)
    with pytest.raises(MigrationVerdictError) as raised:
        MigrationStatusProvider().update(
            "migration-status", props(dsn, OLD_IMAGE, OLD_DEPLOYMENT), props(dsn, IMAGE, DEPLOYMENT, attempts=1)
        )
    deployment.join()
    message = str(raised.value)
    assert message.startswith("db-migrator failed in Nomad allocation 4f2a9c1e-alloc: ")
    assert "00002_bad.sql (up): statement 2 (line 3) failed: ERROR: division by zero" in message
    assert str(conninfo.conninfo_to_dict(dsn)["password"]) not in message


def test_no_run_in_time_names_the_deployment_and_the_logs_command(dsn: str) -> None:
    with pytest.raises(MigrationVerdictError) as raised:
        MigrationStatusProvider().update(
            "migration-status", props(dsn, OLD_IMAGE, OLD_DEPLOYMENT), props(dsn, IMAGE, DEPLOYMENT, first_run=3)
        )
    assert re.fullmatch(
        rf"no run of this deployment's db-migrator \(image {re.escape(IMAGE)}, deployment dddddddddddd\) reached the"
        r" database within [34]s\. See the task's output with `nomad alloc logs -stderr -job api -task db-migrator`",
        str(raised.value),
    ), str(raised.value)
    assert LOGS_COMMAND == "nomad alloc logs -stderr -job api -task db-migrator"


def test_an_earlier_deployments_run_does_not_count(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": "old-alloc", "MIGRATOR_DEPLOYMENT": OLD_DEPLOYMENT}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    with pytest.raises(MigrationVerdictError, match="no run of this deployment's db-migrator"):
        MigrationStatusProvider().update(
            "migration-status", props(dsn, IMAGE, OLD_DEPLOYMENT), props(dsn, IMAGE, DEPLOYMENT, first_run=3)
        )


def test_no_wait_when_what_the_migrator_runs_does_not_change(dsn: str) -> None:
    """Nomad starts no migrator for a change that leaves its task as it was (apiCount, canary, a
    new API image...): nothing to wait for, whatever else changed."""
    olds = props(dsn, IMAGE, DEPLOYMENT, first_run=300)
    result = MigrationStatusProvider().update(
        "migration-status", olds, {**olds, "database_url": dsn + " ", "migrations_hash": "other", "versions": [1]}
    )
    assert result.outs is not None
    assert (result.outs["last_run"], result.outs["pending"], result.outs["error"]) == (None, [1], None)


# -- migrateTo at preview ----------------------------------------------------------------


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


def test_a_new_status_takes_the_newest_run_of_its_deployment(dsn: str, migrations: MigrationDir) -> None:
    """A stack whose job already ran this deployment: the newest finished run decides, not an
    earlier failed attempt that was fixed since."""
    path = migrations.add("00001_a.sql", "-- +goose Up\nSELECT 1 / 0;\n")
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": "first-try", "MIGRATOR_DEPLOYMENT": DEPLOYMENT}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 1
    path.write_text(table_file("a"))
    env["NOMAD_ALLOC_ID"] = "second-try"
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    result = MigrationStatusProvider().create(props(dsn, IMAGE, DEPLOYMENT))
    assert result.outs is not None
    assert (result.outs["last_run"]["outcome"], result.outs["last_run"]["allocation"]) == ("succeeded", "second-try")


def a_run(**changes: Any) -> Run:
    started = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": 7, "started_at": started, "finished_at": started, "image": "registry/db-migrator@sha256:ab",
        "allocation": "alloc-1", "command": "migrate-to latest", "outcome": "succeeded", "applied": [1],
        "failed_file": None, "failed_statement": None, "failed_line": None, "error": None,
    }  # fmt: skip
    return Run(**{**fields, **changes})


def test_preview_describes_the_last_run_in_one_line() -> None:
    assert describe(a_run()) == (
        "last migrator run 2026-11-24 09:30:05 UTC: succeeded (migrate-to latest, image registry/db-migrator@sha256:ab)"
    )


def test_a_failed_run_is_described_with_its_error_and_an_unknown_image_as_such() -> None:
    failed = a_run(outcome="failed", image="", error="00002_b.sql (up): statement 1 (line 2) failed")
    assert describe(failed) == (
        "last migrator run 2026-11-24 09:30:05 UTC: failed (migrate-to latest, image ?):"
        " 00002_b.sql (up): statement 1 (line 2) failed"
    )
