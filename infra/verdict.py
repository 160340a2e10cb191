"""The migrator's verdict on a deployment, read from the database it migrated.

Every migrator run records itself (``migrator.history``) with its deployment
(``MIGRATOR_DEPLOYMENT``: the digest of the db-migrator task as the jobspec defines it,
``infra/jobspec.py``), its image and its Nomad allocation. When an update changes that task,
Nomad runs it, and ``wait_for_verdict`` decides on the records of that deployment, never on
the clock of the machine running Pulumi, so an ``up`` after a Ctrl-C or a timeout decides at
once from the runs already recorded (``decide``):

- the newest finished run of the deployment decides: a success ends the wait, even after
  failures (a failure Nomad retried into success is a success);
- a failure is final once Nomad will not run the migrator again: after ``attempts`` failures
  since the deployment's last success (Nomad replaces a failed allocation
  ``RESCHEDULE_ATTEMPTS`` times, then fails the deployment at once and reverts it), or when no
  retry was recorded within ``retry`` seconds of it (Nomad did not retry: the deployment
  failed or was replaced, or the job was stopped). Until then a retry may still succeed;
- a run still ``running`` whose session is gone was killed (the OOM killer, a lost node):
  every writing run holds the migration lock, so a ``running`` record is alive only while it
  is the newest record and a session holds the lock. It counts as a failure, as does a run a
  later one marked ``lost``;
- until a run of the deployment is recorded the wait lasts at most ``first_run`` seconds
  (placement, image pulls, the advisory lock), and ``total`` seconds in all;
- a database that cannot be read from here gives up after ``READ_GIVE_UP_SECONDS`` of failed
  reads and says why: a warning, never a failure of ``pulumi up`` (Nomad's deployment, which
  the job resource waits for, still decides).

No Nomad API is needed. A deployment whose exact task ran before (a configuration deployed
again) finds its earlier runs: their newest decides, as after a Ctrl-C.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from migrator import GOOSE_LOCK_ROW, History, MigratorError, Outcome, Run, TableName, connect, redact

POLL_SECONDS = 2.0
# Every read from where Pulumi runs: a database reachable only from the Nomad clients is a
# warning within seconds.
READ_TIMEOUT_SECONDS = 5
READ_GIVE_UP_SECONDS = 30.0
LOGS_COMMAND = "nomad alloc logs -stderr -job api -task db-migrator"
KILLED = "killed"  # a run that was still `running` when its session ended
LOST = "lost"  # the same, as a later run marks it


class MigrationVerdictError(Exception):
    """The deployment's migrator run failed, or none came in time."""


@dataclass(frozen=True)
class Patience:
    """How long the verdict waits, in seconds, and how many failures end it (infra/deadlines.py)."""

    attempts: int
    first_run: float
    retry: float
    total: float


@dataclass(frozen=True)
class Verdict:
    run: Run | None  # the run that decides; None when the database could not be read
    outcome: str = ""  # the run's outcome; KILLED for a run whose session is gone
    unreadable: str | None = None  # why the database could not be read, password removed

    @property
    def failed(self) -> bool:
        return self.run is not None and self.outcome != Outcome.SUCCEEDED


def summary(run: Run) -> dict[str, object]:
    """The stack output ``lastMigratorRun``."""
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "time": run.started_at.isoformat(),
        "image": run.image,
        "allocation": run.allocation,
        "command": run.command,
        "outcome": run.outcome,
        "applied": run.applied,
        "durationSeconds": seconds,
    }


def describe(run: Run) -> str:
    """One line about a run, for `pulumi preview`."""
    when = f"{run.started_at:%Y-%m-%d %H:%M:%S %Z}"
    line = f"last migrator run {when}: {run.outcome} ({run.command}, image {run.image or '?'})"
    return f"{line}: {run.error}" if run.error else line


def unreadable(exc: Exception, database_url: str) -> str:
    """Why the database could not be read, without its password: the migrator's own errors
    are sentences, a driver's failure keeps its type's name."""
    if isinstance(exc, MigratorError):
        return redact(str(exc), database_url)
    return redact(f"{type(exc).__name__}: {exc}", database_url)


def outcome(run: Run, newest: Run, lock_held: bool) -> str:
    """The run's outcome, KILLED for a `running` one whose session is gone."""
    if run.outcome == Outcome.RUNNING and not (run.id == newest.id and lock_held):
        return KILLED
    return run.outcome


def decide(
    runs: list[Run], deployment: str, *, attempts: int, retry: timedelta, now: datetime, lock_held: bool
) -> Verdict | None:
    """The verdict on ``deployment`` from ``runs`` (newest first, as History.runs gives them),
    or None while Nomad may still run it (see the module's docstring)."""
    mine = [(run, outcome(run, runs[0], lock_held)) for run in runs if run.deployment == deployment]
    finished = [(run, state) for run, state in mine if state != Outcome.RUNNING]
    if not finished:
        return None
    newest, state = finished[0]
    if state == Outcome.SUCCEEDED:
        return Verdict(newest, state)
    failures = 0
    for _, earlier in finished:
        if earlier == Outcome.SUCCEEDED:
            break
        failures += 1
    if failures >= attempts:
        return Verdict(newest, state)
    if mine[0][0].id != newest.id:
        return None  # a newer run of the deployment is running: Nomad's retry
    ended = newest.finished_at or newest.started_at
    return Verdict(newest, state) if now - ended > retry else None


def failure_message(verdict: Verdict) -> str:
    run = verdict.run
    assert run is not None
    allocation = run.allocation or "?"
    if verdict.outcome in (KILLED, LOST):
        return (
            f"db-migrator was killed in Nomad allocation {allocation}: its session ended while it ran, without a"
            f" record of why (out of memory, a lost node, a stop). See `nomad alloc status {allocation}` and"
            f" `{LOGS_COMMAND}`"
        )
    return f"db-migrator {verdict.outcome} in Nomad allocation {allocation}: {run.error}"


def _read(conn: psycopg.Connection, table: TableName) -> tuple[list[Run], datetime, bool]:
    """The runs, the database's time and whether a session holds the migration lock."""
    row = conn.execute(f"SELECT now(), EXISTS (SELECT 1 FROM pg_locks l WHERE {GOOSE_LOCK_ROW})").fetchone()
    assert row is not None
    return History(conn, table).runs(), row[0], bool(row[1])


def wait_for_verdict(database_url: str, table: TableName, deployment: str, image: str, patience: Patience) -> Verdict:
    """Block until the deployment's runs decide; raise when it failed or no run came in time.
    A database that cannot be read gives up and returns why."""
    started = time.monotonic()
    unreadable_since: float | None = None
    while True:
        try:
            with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
                runs, now, lock_held = _read(conn, table)
        except Exception as exc:  # any driver failure must stay a warning, and stay redacted
            unreadable_since = unreadable_since or time.monotonic()
            if time.monotonic() - unreadable_since >= READ_GIVE_UP_SECONDS:
                return Verdict(None, unreadable=unreadable(exc, database_url))
            time.sleep(POLL_SECONDS)
            continue
        unreadable_since = None
        verdict = decide(
            runs,
            deployment,
            attempts=patience.attempts,
            retry=timedelta(seconds=patience.retry),
            now=now,
            lock_held=lock_held,
        )
        if verdict is not None:
            if verdict.failed:
                raise MigrationVerdictError(failure_message(verdict))
            return verdict
        waited = time.monotonic() - started
        recorded = any(run.deployment == deployment for run in runs)
        if waited >= patience.total or (not recorded and waited >= patience.first_run):
            what = "finished" if recorded else "reached the database"
            raise MigrationVerdictError(
                f"no run of this deployment's db-migrator (image {image}, deployment {deployment[:12]}) {what}"
                f" within {waited:.0f}s. See the task's output with `{LOGS_COMMAND}`"
            )
        time.sleep(POLL_SECONDS)


def last_run(database_url: str, table: str) -> Run | None:
    """The newest recorded run, or None (none yet, or the database cannot be read)."""
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            runs = History(conn, TableName.parse(table)).runs(limit=1)
    except Exception:  # the status reports unreadable databases itself
        return None
    return runs[0] if runs else None
