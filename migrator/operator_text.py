"""The operator's English for what the library reports: the lines the command line prints.

The library returns results and sends events; these are goose's words for them (``OK``
and ``EMPTY`` per file, the closing version line) and the migrator's own notices. Its
refusals say what is wrong; here each gets the flag that gets past it.
"""

from __future__ import annotations

from migrator.events import (
    ChecksumsAdopted,
    EditAccepted,
    Event,
    InterruptedRunFound,
    LockRetry,
    MigrationFinished,
    RunResult,
)
from migrator.interruptions import describe_interruption
from migrator.refusals import DownRefused, DriftRefused, InterruptedRunRefused, OutOfOrderRefused

_FLAG_HINTS: dict[type[Exception], str] = {
    DriftRefused: ". Restore the applied file(s); or pass --allow-edited to go on this once (the edit is reported"
    " again next time), or --accept-edited to record the edited file's checksum as the applied one",
    OutOfOrderRefused: "; apply them out of order with --allow-missing",
    InterruptedRunRefused: ": finish it, or pass --allow-interrupted to roll back anyway",
    DownRefused: "; going down needs --allow-down (the stack setting allowDown)",
}


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.2f}s"


def event_line(event: Event) -> str:
    match event:
        case MigrationFinished(result):
            return f"{'EMPTY' if result.empty else 'OK  '} {result.file} ({format_duration(result.seconds)})"
        case LockRetry(step, statement, attempt, attempts, backoff):
            return (
                f"migrator: {step.where(statement)} blocked by a lock (attempt {attempt} of {attempts});"
                f" rolled back, retrying in {format_duration(backoff)}"
            )
        case EditAccepted(migration):
            return f"migrator: accepted the edit of {migration.filename}: its new checksum is recorded"
        case ChecksumsAdopted(migrations):
            return f"migrator: recorded checksums of {len(migrations)} migration(s) applied before checksums existed"
        case InterruptedRunFound(entry, rerun):
            what = "running it again from the start" if rerun else "see status"
            return f"migrator: {describe_interruption(entry)}; {what}"


def result_line(result: RunResult) -> str:
    if result.already_at is not None:
        return f"migrator: already at version {result.already_at}; nothing to do"
    if result.migrations:
        return f"migrator: successfully migrated database to version: {result.current}"
    return f"migrator: no migrations to run. current version: {result.current}"


def error_message(exc: Exception) -> str:
    """An error as the command line reports it: a refusal ends with the flag that gets past it."""
    return str(exc) + _FLAG_HINTS.get(type(exc), "")
