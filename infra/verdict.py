"""The migrator's verdict on a deployment, read from the database it migrated.

Every migrator run records itself (``migrator.history``), with the image it ran from and
its Nomad allocation. While Nomad deploys a new job version, ``wait_for_verdict`` watches
those records for a run of this deployment's image: a success returns, a failure raises
with the migrator's own message and the allocation, and no run before the job's deadline
raises with the command that shows the task's logs. No Nomad API is needed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import psycopg

from migrator.dsn import connect, redact
from migrator.history import History, Outcome, Run
from migrator.store import TableName

POLL_SECONDS = 2.0
# A run counts for this deployment when it started at most this long before the wait did:
# Nomad may start the task a little before Pulumi starts waiting.
EARLY_START = timedelta(minutes=2)
LOGS_COMMAND = "nomad alloc logs -stderr -job api -task db-migrator"


class MigrationVerdictError(Exception):
    """The deployment's migrator run failed, or none came in time."""


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


def _decide(runs: list[Run], image: str, since: datetime | None) -> Run | None:
    """The finished run of ``image`` that decides (``runs`` newest first), or None yet: of
    the runs since ``since``, the first to finish (the deployment's first allocation); with
    no ``since``, the newest, which says how the database stands now."""
    earliest = since - EARLY_START if since is not None else None
    finished = [
        run
        for run in runs
        if run.image == image and run.outcome != Outcome.RUNNING and (earliest is None or run.started_at >= earliest)
    ]
    if not finished:
        return None
    return finished[0] if since is None else finished[-1]


def _database_now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def wait_for_verdict(database_url: str, table: TableName, image: str, timeout_seconds: float, *, new_runs: bool) -> Run:
    """Block until a run of ``image`` has finished (with ``new_runs``, one that started once
    this wait did, by the database's clock); raise unless it succeeded."""
    deadline = time.monotonic() + timeout_seconds
    since: datetime | None = None  # with new_runs: the database's time at the first read
    while True:
        unreachable = None
        decided = None
        try:
            with connect(database_url, read_only=True) as conn:
                if new_runs and since is None:
                    since = _database_now(conn)
                decided = _decide(History(conn, table).runs(), image, since)
        except Exception as exc:  # an unreachable database is tried again until the deadline
            unreachable = redact(str(exc), database_url)
        if decided is not None:
            if decided.outcome == Outcome.SUCCEEDED:
                return decided
            raise MigrationVerdictError(
                f"db-migrator {decided.outcome} in Nomad allocation {decided.allocation or '?'}: {decided.error}"
            )
        if time.monotonic() >= deadline:
            why = f"; the database could not be read: {unreachable}" if unreachable else ""
            raise MigrationVerdictError(
                f"no run of the db-migrator image {image} reached the database within"
                f" {timeout_seconds:.0f}s{why}. See the task's output with `{LOGS_COMMAND}`"
            )
        time.sleep(POLL_SECONDS)


def last_run(database_url: str, table: str) -> Run | None:
    """The newest recorded run, or None (none yet, or the database cannot be read)."""
    try:
        with connect(database_url, read_only=True) as conn:
            runs = History(conn, TableName.parse(table)).runs(limit=1)
    except Exception:  # the status reports unreadable databases itself
        return None
    return runs[0] if runs else None
