"""What the library reports instead of printing: progress events, and each command's result.

A long run reports as it goes through an optional ``on_event`` callback (a file finished,
a lock blocked a file that will be retried, checksums were recorded), so a caller can
show progress; every writing command returns a RunResult when it is done. The command
line turns both into goose's text (operator_text.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from migrator.interruptions import InterruptedRun
from migrator.parser import Direction
from migrator.source import Migration

if TYPE_CHECKING:
    from migrator.planning import Step


def place(file: str, direction: Direction, number: int, line: int | None) -> str:
    """A file's statement ``number`` starting at ``line`` (0 and None: its version row), as
    messages and events name it."""
    name = f"{file} ({direction.value})"
    if number == 0:
        return f"{name}: recording the version"
    return f"{name}: statement {number} (line {line})"


@dataclass(frozen=True)
class MigrationResult:
    """One file a command ran, as goose's Provider reports it."""

    version: int
    file: str
    direction: Direction
    seconds: float
    empty: bool


@dataclass(frozen=True)
class RunResult:
    """What one writing command did."""

    current: int  # goose's current version afterwards
    migrations: list[MigrationResult] = field(default_factory=list)  # every file it ran, in order
    accepted: list[Migration] = field(default_factory=list)  # edited applied files whose new checksum it recorded
    adopted: list[Migration] = field(default_factory=list)  # applied before checksums existed; now recorded
    already_at: int | None = None  # migrate_to's target, when the database was there already
    ahead: list[int] = field(default_factory=list)  # applied versions it left above its target (DatabaseAhead)


@dataclass(frozen=True)
class EditAccepted:
    """An edited applied file's checksum was recorded as the one it was applied with."""

    migration: Migration


@dataclass(frozen=True)
class ChecksumsAdopted:
    """Checksums were recorded for files applied before the ledger existed (by goose, say)."""

    migrations: list[Migration]


@dataclass(frozen=True)
class InterruptedRunFound:
    """A NO TRANSACTION run stopped part-way; ``rerun`` when this command runs the file again."""

    run: InterruptedRun
    rerun: bool


@dataclass(frozen=True)
class LockRetry:
    """PostgreSQL's lock_timeout stopped a file: it was rolled back and runs again in ``backoff`` seconds."""

    version: int
    file: str
    direction: Direction
    statement: int  # the statement that waited; 0 for the version row
    line: int | None  # where that statement starts in the file; None for the version row
    attempt: int
    attempts: int
    backoff: float

    @classmethod
    def of(cls, step: Step, statement: int, attempt: int, attempts: int, backoff: float) -> LockRetry:
        """The retry of planned ``step``, blocked at its ``statement``."""
        migration = step.migration
        return cls(
            migration.version,
            migration.filename,
            step.direction,
            statement,
            step.line(statement),
            attempt,
            attempts,
            backoff,
        )

    @property
    def where(self) -> str:
        """The file and the statement that waited, for messages, as the applier names them."""
        return place(self.file, self.direction, self.statement, self.line)


@dataclass(frozen=True)
class MigrationFinished:
    """A file was applied or rolled back: its result."""

    result: MigrationResult


class Ahead(StrEnum):
    """Why a run leaves versions applied above where it moves the database."""

    NEWER_IMAGE = "newer image"  # newer than every file: a newer image applied them
    DOWN_NOT_ALLOWED = "down not allowed"  # migrate_to's target is lower, and going down was not allowed
    ROLLBACK_DONE = "rollback done"  # the rollback that asked for the target completed before


@dataclass(frozen=True)
class DatabaseAhead:
    """The database has ``versions`` applied above ``above`` (the newest file, or migrate_to's
    target), and this run applies and rolls back nothing for them, as goose's up does."""

    versions: list[int]
    above: int
    why: Ahead
    rollback_id: str | None = None  # with ROLLBACK_DONE: the rollback, and when it completed
    completed_at: datetime | None = None


Event = EditAccepted | ChecksumsAdopted | InterruptedRunFound | LockRetry | MigrationFinished | DatabaseAhead
