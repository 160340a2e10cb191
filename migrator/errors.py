"""Errors the migrator reports (the command line gives each class its exit code: cli/exit_codes.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MigratorError(Exception):
    """Base class: the message is one line meant for a human operator."""


class InputError(MigratorError):
    """Bad input or usage: nothing was changed."""


class ParseError(InputError):
    """A migration file that goose's grammar rejects, located by file and line."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.reason = message
        super().__init__(self._render())

    def located(self, path: Path) -> ParseError:
        return ParseError(self.reason, path=path, line=self.line)

    def _render(self) -> str:
        where = self.path.name if self.path is not None else "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.reason}"


class LintFindings(MigratorError):
    """squawk found risky statements; nothing was changed."""


class Reported(MigratorError):
    """A verdict whose command printed its whole report already (with ``--json``, a document
    that carries the verdict): the command line adds only the error line, on stderr."""


class RehearsalFailed(Reported):
    """The rehearsal found that a pending migration fails; the target was not changed."""


class DriftFound(Reported):
    """The live schema differs from what its applied migrations build."""


class DatabaseError(MigratorError):
    """The database could not be reached or refused a command outside any migration."""


@dataclass(frozen=True)
class Failure:
    """Where a migration stopped, for the run history and for callers of the library."""

    file: str
    direction: str
    statement: int | None  # None where no statement was running (the version row, the set-up)
    line: int | None
    reason: str  # PostgreSQL's message, or what stopped it
    rolled_back: bool  # True when nothing of the file remains applied


class MigrationFailed(MigratorError):
    """A migration's statement failed; the message says what remains applied."""

    def __init__(self, message: str, failure: Failure | None = None):
        super().__init__(message)
        self.failure = failure


class LockTimeout(MigratorError):
    """The goose advisory lock was not acquired in time; nothing was changed."""


class Interrupted(MigrationFailed):
    """SIGINT or SIGTERM stopped a migration; the message says what of it remains applied."""
