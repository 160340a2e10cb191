"""Every error the migrator raises, under one root: catch ``MigratorError`` to catch them all.

Each message is one line meant for a human operator; each class carries the facts a caller
acts on (the file and line of a ParseError, the Failure and the files applied before it of a
MigrationFailed, the files a refusal names). The tree (module of each class in brackets)::

    MigratorError
    ├── InputError                  bad input or usage: nothing was changed
    │   ├── ParseError              a file goose's grammar rejects, by file and line
    │   ├── DurationError           a duration that is not one (also a ValueError)
    │   ├── SubstitutionError       an ENVSUB line that cannot be expanded [envsub]
    │   ├── DriftRefused            applied files edited or gone [refusals]
    │   ├── OutOfOrderRefused       pending files older than the highest applied [refusals]
    │   ├── InterruptedRunRefused   a NO TRANSACTION run stopped part-way [refusals]
    │   ├── GoMigrationRefused      a Go migration would have to run [planning]
    │   ├── SessionRefused          the session cannot write safely [server_session]
    │   └── UsageError              the command line's arguments [cli.flags]
    ├── DatabaseError               unreachable, or refused a command outside any migration
    │   └── LedgerUnreadable        no privilege to read the ledger [ledger]
    ├── MigrationFailed             a migration's statement failed: ``failure``, ``applied``
    │   └── Interrupted             SIGINT or SIGTERM stopped a migration
    ├── LockTimeout                 goose's advisory lock was not acquired in time
    ├── LintFindings                squawk found risky statements
    └── Reported                    a verdict whose report the command printed already
        ├── RehearsalFailed         a pending migration fails on a copy
        └── DriftFound              the live schema differs from what was applied

Two kinds of exception cross the library's boundary unwrapped, on purpose:

- ``psycopg.Error``, where a query outside any migration fails (reading goose's table,
  the ledger or the run history; waiting for the lock; the session's settings):
  the failed query changed nothing, the library knows nothing psycopg's exception does
  not say already, and that exception says more (its class tells whether the
  connection is still usable, ``diag`` carries PostgreSQL's fields). The caller owns the
  connection, so the caller decides what a lost one means. Where the library does add
  facts, it wraps: inside a migration the error becomes MigrationFailed (which statement,
  what remains applied), and ``connect`` turns a refused connection into DatabaseError.
- ``KeyboardInterrupt`` outside a migration (inside one it becomes Interrupted, which says
  what of the file remains applied): nothing was running that the library could report on.

A SubstitutionError never reaches a caller: the parser raises it again as a ParseError that
names the file and line. Exceptions private to a module (``applying._Blocked``, ``applying._OutOfTime``) steer a
retry or a deadline and never leave it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrator.events import MigrationResult


class MigratorError(Exception):
    """Base class: the message is one line meant for a human operator."""


class InputError(MigratorError):
    """Bad input or usage: nothing was changed."""


class ParseError(InputError):
    """A migration file that goose's grammar rejects, located by file and line."""

    path: Path | None
    line: int | None
    reason: str

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


class DurationError(InputError, ValueError):
    """A duration that is not one PostgreSQL takes (durations.parse_duration); a ValueError
    too, as what reads a setting expects of a value it cannot use."""


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
    """A migration's statement failed; the message says what remains applied. ``applied``
    is every file the run finished before this one, in order, as RunResult.migrations lists
    them (goose's PartialError.Applied): the Migrator's commands fill it in."""

    failure: Failure | None
    applied: list[MigrationResult]

    def __init__(self, message: str, failure: Failure | None = None):
        super().__init__(message)
        self.failure = failure
        self.applied = []


class LockTimeout(MigratorError):
    """The goose advisory lock was not acquired in time; nothing was changed."""


class Interrupted(MigrationFailed):
    """SIGINT or SIGTERM stopped a migration; the message says what of it remains applied."""
