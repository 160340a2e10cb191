"""How infra/verdict.py picks the run that decides a deployment, and what it reports, against
runs recorded by the real migrator (and, for the choice itself, runs written out by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra import verdict
from infra.verdict import EARLY_START, MigrationVerdictError, last_run, summary, wait_for_verdict
from migrator.history import Outcome, Run
from migrator.store import TableName
from tests.cli_runner import run_cli
from tests.support import MigrationDir, SessionSpy, query, table_file

IMAGE = "registry.test/db-migrator@sha256:" + "ef" * 32
TABLE = TableName.parse("_migrations")
UNREACHABLE = "postgresql://api:pw-verdict-secret@127.0.0.1:1/api"
SINCE = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def run(run_id: int, started: datetime, outcome: str = Outcome.SUCCEEDED, image: str = IMAGE) -> Run:
    finished = None if outcome == Outcome.RUNNING else started + timedelta(seconds=3)
    return Run(run_id, started, finished, image, f"alloc-{run_id}", "migrate-to", outcome, [1], None, None, None, None)


def test_a_deployment_is_decided_by_the_first_run_of_its_image_to_finish_since_the_wait() -> None:
    runs = [  # newest first, as History.runs gives them
        run(5, SINCE + timedelta(seconds=40), Outcome.RUNNING),
        run(4, SINCE + timedelta(seconds=30), image="registry.test/other@sha256:00"),
        run(3, SINCE + timedelta(seconds=20)),
        run(2, SINCE - EARLY_START, Outcome.FAILED),  # started just as early as still counts
        run(1, SINCE - EARLY_START - timedelta(microseconds=1)),  # an earlier deployment's
    ]
    assert verdict._decide(runs, IMAGE, SINCE) == runs[3]
    assert verdict._decide(runs[:3], IMAGE, SINCE) == runs[2]
    assert verdict._decide(runs[4:], IMAGE, SINCE) is None
    # Without a start, the newest finished run of the image says how the database stands.
    assert verdict._decide(runs, IMAGE, None) == runs[2]
    assert verdict._decide(runs[:2], IMAGE, None) is None


def test_the_summary_output_names_every_field() -> None:
    finished = run(7, SINCE)
    assert summary(finished) == {
        "time": "2026-11-24T12:00:00+00:00",
        "image": IMAGE,
        "allocation": "alloc-7",
        "command": "migrate-to",
        "outcome": "succeeded",
        "applied": [1],
        "durationSeconds": 3.0,
    }
    assert summary(run(8, SINCE, Outcome.RUNNING))["durationSeconds"] is None


def test_an_unreadable_database_is_named_at_the_deadline_without_its_password() -> None:
    with pytest.raises(MigrationVerdictError) as raised:
        wait_for_verdict(UNREACHABLE, TABLE, IMAGE, 0, new_runs=True)
    message = str(raised.value)
    assert message.startswith(
        f"no run of the db-migrator image {IMAGE} reached the database within 0s; the database could not be read: "
    )
    assert message.endswith(". See the task's output with `nomad alloc logs -stderr -job api -task db-migrator`")
    assert "127.0.0.1" in message
    assert "pw-verdict-secret" not in message


def test_a_readable_database_with_no_run_says_only_that(dsn: str) -> None:
    with pytest.raises(MigrationVerdictError) as raised:
        wait_for_verdict(dsn, TABLE, IMAGE, 0, new_runs=False)
    assert str(raised.value) == (
        f"no run of the db-migrator image {IMAGE} reached the database within 0s."
        " See the task's output with `nomad alloc logs -stderr -job api -task db-migrator`"
    )


def test_a_run_from_before_the_wait_decides_only_when_new_runs_are_not_required(
    dsn: str, migrations: MigrationDir, session_spy: SessionSpy
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": "earlier-alloc"}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    query(dsn, "UPDATE _migrations_runs SET started_at = started_at - interval '10 minutes'")
    session_spy.watch(verdict)
    assert wait_for_verdict(dsn, TABLE, IMAGE, 0, new_runs=False).allocation == "earlier-alloc"
    with pytest.raises(MigrationVerdictError, match="no run of the db-migrator image"):
        wait_for_verdict(dsn, TABLE, IMAGE, 0, new_runs=True)
    newest = last_run(dsn, "_migrations")
    assert newest is not None
    assert newest.allocation == "earlier-alloc"
    assert session_spy.sessions, "every read went through the spied connect"
    assert all(session["read_only"] == "on" for session in session_spy.sessions)


def test_a_failed_run_without_an_allocation_is_reported_as_such(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "-- +goose Up\nSELECT 1 / 0;\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path, env={"MIGRATOR_IMAGE": IMAGE}).returncode == 1
    with pytest.raises(MigrationVerdictError) as raised:
        wait_for_verdict(dsn, TABLE, IMAGE, 0, new_runs=False)
    assert str(raised.value).startswith("db-migrator failed in Nomad allocation ?: 00001_bad.sql (up): ")


def test_last_run_is_the_newest_or_none(dsn: str, migrations: MigrationDir) -> None:
    assert last_run(UNREACHABLE, "_migrations") is None
    assert last_run(dsn, "_migrations") is None
    migrations.add("00001_a.sql", table_file("a"))
    for allocation in ("first", "second"):
        env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": allocation}
        assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    newest = last_run(dsn, "_migrations")
    assert newest is not None
    assert newest.allocation == "second"
