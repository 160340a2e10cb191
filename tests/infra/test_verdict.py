"""How infra/verdict.py decides a deployment from its recorded runs (written out by hand, to
pin each rule), how it reads them from a real PostgreSQL (runs the real migrator recorded), and
how the status provider waits for it during `pulumi up` and preview describes the last run."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from infra import verdict
from infra.migration_status import MigrationStatusProvider
from infra.verdict import (
    KILLED,
    LOGS_COMMAND,
    MigrationVerdictError,
    Patience,
    Verdict,
    decide,
    describe,
    failure_message,
    last_run,
    summary,
    wait_for_verdict,
)
from migrator.dsn import connect
from migrator.errors import DatabaseError
from migrator.history import Outcome, Run
from migrator.table_name import TableName
from tests.support import MigrationDir, SessionSpy, table_file
from tests.support.cli_runner import run_cli
from tests.support.migrator_process import run_migrator

IMAGE = "registry.test/db-migrator@sha256:" + "ef" * 32
TABLE = TableName.parse("_migrations")
UNREACHABLE = "postgresql://api:pw-verdict-secret@127.0.0.1:1/api"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MINE, OTHER = "deploy-mine", "deploy-other"
RETRY = timedelta(minutes=10)


def run(run_id: int, outcome: str, deployment: str = MINE, *, ended: timedelta = timedelta(minutes=1)) -> Run:
    """A run that ended ``ended`` before NOW (a running one has no end)."""
    finished = None if outcome == Outcome.RUNNING else NOW - ended
    started = NOW - ended - timedelta(seconds=3)
    error = "00002_b.sql (up): statement 1 (line 2) failed" if outcome != Outcome.SUCCEEDED else None
    return Run(run_id, started, finished, IMAGE, f"alloc-{run_id}", "migrate-to latest", outcome, [1], None, None,
               None, error, deployment)  # fmt: skip


def verdict_of(runs: list[Run], *, lock_held: bool = False, attempts: int = 3) -> Verdict | None:
    return decide(runs, MINE, attempts=attempts, retry=RETRY, now=NOW, lock_held=lock_held)


def test_the_newest_finished_run_of_the_deployment_decides_and_a_later_success_wins() -> None:
    runs = [run(4, Outcome.SUCCEEDED, OTHER), run(3, Outcome.SUCCEEDED), run(2, Outcome.FAILED), run(1, Outcome.FAILED)]
    assert verdict_of(runs) == Verdict(runs[1], Outcome.SUCCEEDED)
    assert verdict_of(runs[2:], attempts=2) == Verdict(runs[2], Outcome.FAILED)
    assert verdict_of([run(5, Outcome.SUCCEEDED, OTHER)]) is None, "another deployment's runs never decide"
    assert verdict_of([]) is None


def test_a_failure_is_final_once_nomad_has_no_attempt_left() -> None:
    """Recent failures (Nomad's retry may still come) decide only when they are as many as
    Nomad makes: failures since the deployment's last success."""
    recent = timedelta(seconds=5)
    third = [run(3, Outcome.FAILED, ended=recent), run(2, Outcome.FAILED), run(1, Outcome.INTERRUPTED)]
    assert verdict_of(third) == Verdict(third[0], Outcome.FAILED)
    assert verdict_of(third[:2]) is None, "two of three: Nomad retries"
    after_success = [*third[:2], run(1, Outcome.SUCCEEDED)]
    assert verdict_of(after_success) is None, "failures before the last success do not count"


def test_a_failure_nomad_did_not_retry_in_time_is_final() -> None:
    within = [run(1, Outcome.FAILED, ended=RETRY)]
    assert verdict_of(within) is None
    late = [run(1, Outcome.FAILED, ended=RETRY + timedelta(microseconds=1))]
    assert verdict_of(late) == Verdict(late[0], Outcome.FAILED)
    after_success = [*late, run(0, Outcome.SUCCEEDED)]
    assert verdict_of(after_success) == Verdict(late[0], Outcome.FAILED), "a success before it ends the count only"


def test_a_retry_in_progress_is_waited_for() -> None:
    retrying = [run(2, Outcome.RUNNING), run(1, Outcome.FAILED, ended=RETRY * 3)]
    assert verdict_of(retrying, lock_held=True) is None
    finished_elsewhere = [run(3, Outcome.SUCCEEDED, OTHER), run(2, Outcome.RUNNING), run(1, Outcome.FAILED)]
    assert verdict_of(finished_elsewhere, lock_held=True, attempts=2) == Verdict(finished_elsewhere[1], KILLED)


def test_a_running_record_whose_session_is_gone_was_killed() -> None:
    """Every writing run holds the migration lock: a `running` record is alive only while it is
    the newest and the lock is held."""
    alone = [run(1, Outcome.RUNNING)]
    assert verdict_of(alone, lock_held=True, attempts=1) is None
    assert verdict_of(alone, lock_held=False, attempts=1) == Verdict(alone[0], KILLED)
    assert verdict_of(alone, lock_held=False) is None, "a failure like any other: Nomad may retry it"
    older = [run(2, Outcome.RUNNING, OTHER), run(1, Outcome.RUNNING)]
    assert verdict_of(older, lock_held=True, attempts=1) == Verdict(older[1], KILLED)
    marked = [run(1, "lost")]
    assert verdict_of(marked, attempts=1) == Verdict(marked[0], "lost")


def test_the_failure_message_is_the_migrators_own_or_names_the_kill() -> None:
    failed = run(7, Outcome.FAILED)
    assert failure_message(Verdict(failed, Outcome.FAILED)) == (
        "db-migrator failed in Nomad allocation alloc-7: 00002_b.sql (up): statement 1 (line 2) failed"
    )
    for outcome in (KILLED, "lost"):
        assert failure_message(Verdict(run(8, Outcome.RUNNING), outcome)) == (
            "db-migrator was killed in Nomad allocation alloc-8: its session ended while it ran, without a record of"
            " why (out of memory, a lost node, a stop). See `nomad alloc status alloc-8` and"
            " `nomad alloc logs -stderr -job api -task db-migrator`"
        )
    anonymous = Run(9, NOW, NOW, IMAGE, "", "up", Outcome.FAILED, [], None, None, None, "x")
    assert failure_message(Verdict(anonymous, Outcome.FAILED)) == "db-migrator failed in Nomad allocation ?: x"


def test_the_summary_output_names_every_field() -> None:
    finished = run(7, Outcome.SUCCEEDED)
    assert summary(finished) == {
        "time": "2026-11-24T11:58:57+00:00",
        "image": IMAGE,
        "allocation": "alloc-7",
        "command": "migrate-to latest",
        "outcome": "succeeded",
        "applied": [1],
        "durationSeconds": 3.0,
    }
    assert summary(run(8, Outcome.RUNNING))["durationSeconds"] is None


PATIENCE = Patience(attempts=3, first_run=0, retry=600, total=0)


def test_an_unreadable_database_gives_up_soon_and_says_why_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verdict, "READ_GIVE_UP_SECONDS", 0.2)
    monkeypatch.setattr(verdict, "POLL_SECONDS", 0.05)
    found = wait_for_verdict(UNREACHABLE, TABLE, MINE, IMAGE, Patience(3, 3600, 600, 3600))
    assert (found.run, found.outcome) == (None, "")
    assert found.unreadable is not None
    assert found.unreadable.startswith("cannot connect to api on 127.0.0.1:1: ")
    assert "pw-verdict-secret" not in found.unreadable
    assert not found.failed


def test_only_reads_failing_for_the_whole_give_up_time_give_up(
    dsn: str, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that fails two reads and then answers is read: its run decides."""
    migrations.add("00001_a.sql", table_file("a"))
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": "after-a-blip", "MIGRATOR_DEPLOYMENT": MINE}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    monkeypatch.setattr(verdict, "READ_GIVE_UP_SECONDS", 3600.0)
    monkeypatch.setattr(verdict, "POLL_SECONDS", 0.01)
    attempts: list[str] = []

    def blip(url: str, **options: object) -> psycopg.Connection:
        attempts.append(url)
        if len(attempts) <= 2:
            raise DatabaseError("cannot connect to api on 127.0.0.1:1: a blip")
        return connect(url, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(verdict, "connect", blip)
    found = wait_for_verdict(dsn, TABLE, MINE, IMAGE, PATIENCE)
    assert found.run is not None
    assert (found.run.allocation, found.unreadable, len(attempts)) == ("after-a-blip", None, 3)


def test_an_unreadable_database_is_read_again_until_the_give_up_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdict, "READ_GIVE_UP_SECONDS", 0.3)
    monkeypatch.setattr(verdict, "POLL_SECONDS", 0.01)
    attempts: list[float] = []

    def refused(url: str, **options: object) -> psycopg.Connection:
        attempts.append(time.monotonic())
        raise DatabaseError("cannot connect to api on 127.0.0.1:1: refused")

    monkeypatch.setattr(verdict, "connect", refused)
    found = wait_for_verdict(UNREACHABLE, TABLE, MINE, IMAGE, PATIENCE)
    gave_up = time.monotonic()
    assert found.unreadable == "cannot connect to api on 127.0.0.1:1: refused"
    assert len(attempts) > 2
    assert gave_up - attempts[0] >= 0.3, "it gave up once the reads had failed for that long, not before"


def test_a_readable_database_with_no_run_says_only_that(dsn: str) -> None:
    with pytest.raises(MigrationVerdictError) as raised:
        wait_for_verdict(dsn, TABLE, MINE, IMAGE, PATIENCE)
    assert str(raised.value) == (
        f"no run of this deployment's db-migrator (image {IMAGE}, deployment deploy-mine) reached the database"
        " within 0s. See the task's output with `nomad alloc logs -stderr -job api -task db-migrator`"
    )


def test_runs_recorded_by_the_migrator_decide_in_short_read_only_sessions(
    dsn: str, migrations: MigrationDir, session_spy: SessionSpy
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    env = {"MIGRATOR_IMAGE": IMAGE, "NOMAD_ALLOC_ID": "earlier-alloc", "MIGRATOR_DEPLOYMENT": MINE}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    session_spy.watch(verdict)
    found = wait_for_verdict(dsn, TABLE, MINE, IMAGE, PATIENCE)
    assert found.run is not None
    assert (found.run.allocation, found.outcome, found.unreadable) == ("earlier-alloc", "succeeded", None)
    newest = last_run(dsn, "_migrations")
    assert newest is not None
    assert newest.allocation == "earlier-alloc"
    assert session_spy.sessions == [{"read_only": "on", "connect_timeout": str(verdict.READ_TIMEOUT_SECONDS)}] * 2


def test_a_run_holding_the_lock_is_alive_and_one_without_it_was_killed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE _migrations_runs (id bigint PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(),"
            " finished_at timestamptz, image text NOT NULL DEFAULT '', allocation text NOT NULL DEFAULT '',"
            " command text NOT NULL, outcome text NOT NULL, applied bigint[] NOT NULL DEFAULT '{}', failed_file text,"
            " failed_statement integer, failed_line integer, error text, deployment text NOT NULL DEFAULT '',"
            " rollback_id text)"
        )
        conn.execute("INSERT INTO _migrations_runs (id, command, outcome, deployment) VALUES (1, 'up', 'running', %s)",
                     (MINE,))  # fmt: skip
        # One attempt: a killed run is final at once, a live one is waited for.
        once = Patience(attempts=1, first_run=0, retry=600, total=0)
        with psycopg.connect(dsn, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(4097083626)")
            with pytest.raises(MigrationVerdictError, match=r"no run of this deployment's db-migrator .* finished"):
                wait_for_verdict(dsn, TABLE, MINE, IMAGE, once)
        with psycopg.connect(dsn, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(4097083627)")  # another key: not the migration lock
            with pytest.raises(MigrationVerdictError) as raised:
                wait_for_verdict(dsn, TABLE, MINE, IMAGE, once)
    assert str(raised.value).startswith("db-migrator was killed in Nomad allocation ?: ")


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


# -- the status provider waits for the verdict; preview describes the last run ----------

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
