"""The operator's English for what the library reports: the lines the command line prints.

The library returns results and sends events; these are goose's words for them (``OK``
and ``EMPTY`` per file, the closing version line) and the migrator's own notices. Its
refusals say what is wrong; here each gets the flag that gets past it.
"""

from __future__ import annotations

from datetime import datetime

from migrator.events import (
    Ahead,
    ChecksumsAdopted,
    DatabaseAhead,
    EditAccepted,
    Event,
    InterruptedRunFound,
    LockRetry,
    MigrationFinished,
    RunResult,
)
from migrator.interruptions import describe_interruption
from migrator.refusals import DriftRefused, InterruptedRunRefused, OutOfOrderRefused

_FLAG_HINTS: dict[type[Exception], str] = {
    DriftRefused: ". Restore the applied file(s); or pass --allow-edited to go on this once (the edit is reported"
    " again next time), or --accept-edited to record the edited file's checksum as the applied one",
    OutOfOrderRefused: "; apply them out of order with --allow-missing",
    InterruptedRunRefused: ": finish it, or pass --allow-interrupted to roll back anyway",
}


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.2f}s"


def event_line(event: Event) -> str:
    match event:
        case MigrationFinished(result):
            return f"{'EMPTY' if result.empty else 'OK  '} {result.file} ({format_duration(result.seconds)})"
        case LockRetry(attempt=attempt, attempts=attempts, backoff=backoff):
            return (
                f"migrator: {event.where} blocked by a lock (attempt {attempt} of {attempts});"
                f" rolled back, retrying in {format_duration(backoff)}"
            )
        case EditAccepted(migration):
            return f"migrator: accepted the edit of {migration.filename}: its new checksum is recorded"
        case ChecksumsAdopted(migrations):
            return f"migrator: recorded checksums of {len(migrations)} migration(s) applied before checksums existed"
        case InterruptedRunFound(run, rerun):
            what = "running it again from the start" if rerun else "see status"
            return f"migrator: {describe_interruption(run)}; {what}"
        case DatabaseAhead(versions, above, why, rollback_id, completed_at):
            return f"migrator: {ahead_text(versions, above, why, rollback_id, completed_at)}"


def ahead_text(
    versions: list[int], above: int, why: Ahead, rollback_id: str | None = None, completed_at: datetime | None = None
) -> str:
    """Why a run leaves ``versions`` applied above ``above``, as the operator reads it."""
    listed = ", ".join(map(str, versions))
    match why:
        case Ahead.NEWER_IMAGE:
            return (
                f"the database is ahead of these migrations: version(s) {listed} applied beyond the newest file"
                f" ({above}), by a newer image; nothing of them to apply or roll back"
            )
        case Ahead.DOWN_NOT_ALLOWED:
            return (
                f"the database is above version {above} (version(s) {listed} applied); going down needs"
                " --allow-down (the stack setting allowDown): nothing rolled back"
            )
        case Ahead.ROLLBACK_DONE:
            when = f" at {completed_at:%Y-%m-%d %H:%M:%S %Z}" if completed_at else ""
            return (
                f"rollback {rollback_id} to version {above} already completed{when}; version(s) {listed} were"
                " applied since, and a rollback runs once: nothing rolled back"
            )


def result_line(result: RunResult) -> str:
    if result.already_at is not None:
        return f"migrator: already at version {result.already_at}; nothing to do"
    if result.migrations:
        return f"migrator: successfully migrated database to version: {result.current}"
    return f"migrator: no migrations to run. current version: {result.current}"


def error_message(exc: Exception) -> str:
    """An error as the command line reports it: a refusal ends with the flag that gets past it."""
    return str(exc) + _FLAG_HINTS.get(type(exc), "")
