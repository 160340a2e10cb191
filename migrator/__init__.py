"""A goose-compatible PostgreSQL migrator: ``python -m migrator``, or ``Migrator`` as a library.

Every public name is here, in ``__all__``; the modules behind them are internals and may
change. A newcomer follows an ``up`` through these modules, in this order:

1. ``cli/program.py`` - the command line: each command's typed arguments (``cli/arguments.py``),
   read from flags and environment; errors become exit codes (``cli/exit_codes.py``).
2. ``cli/commands.py`` - each command's handler: connects (``dsn.py``), runs ``Migrator``, prints.
3. ``api.py`` - ``Migrator.up``: lock, read the state, plan, apply every step, reseal.
4. ``lock.py`` - goose's advisory lock, polled until it is free or the wait runs out.
5. ``status.py`` - the files (``source.py``) against goose's table (``store.py``) and the ledger.
6. ``planning.py`` - what ``up`` applies, parsed, and the refusals (drift, out of order, Go).
7. ``parser.py`` - goose's file format: annotations, statements, ENVSUB.
8. ``applying.py`` - each file's statements sent, in a transaction or not, its version row written.
9. ``seal.py`` - the no-op shortcut: a digest that proves the next ``up`` has nothing to do.

``import migrator`` is cheap: a name is imported from its module on first use (PEP 562), so
``python -m migrator --version`` loads neither psycopg nor pglast.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms)

if TYPE_CHECKING:
    from migrator.api import Migrator
    from migrator.data_checks import DataCheck, Verdict
    from migrator.drift import Difference, Drift
    from migrator.dsn import connect, redact
    from migrator.durations import milliseconds, parse_duration
    from migrator.errors import (
        DatabaseError,
        DriftFound,
        DurationError,
        Failure,
        InputError,
        Interrupted,
        LintFindings,
        LockTimeout,
        MigrationFailed,
        MigratorError,
        ParseError,
        RehearsalFailed,
        Reported,
    )
    from migrator.events import (
        Ahead,
        ChecksumsAdopted,
        DatabaseAhead,
        EditAccepted,
        Event,
        InterruptedRunFound,
        LockRetry,
        MigrationFinished,
        MigrationResult,
        RunResult,
    )
    from migrator.history import History, Outcome, Run, RunPlace, RunRecorder
    from migrator.history import Recording as RunRecording
    from migrator.interruptions import InterruptedRun
    from migrator.ledger_entries import LedgerUnreadable
    from migrator.lint import Finding as LintFinding
    from migrator.lint import find_config, lint_if_installed, squawk_binary
    from migrator.lint import lint as lint_migrations
    from migrator.lock import GOOSE_LOCK_ROW, AdvisoryLocker, SessionLocker
    from migrator.operator_text import ahead_text, error_message
    from migrator.options import Options
    from migrator.own_transaction import note as transaction_note
    from migrator.parser import Direction, ParsedMigration, Statement, parse_file, parse_sql
    from migrator.pg_grammar import Command
    from migrator.pg_grammar import Kind as CommandKind
    from migrator.planning import GoMigrationRefused, Step, refuse_unknown_target
    from migrator.refusals import DriftRefused, InterruptedRunRefused, OutOfOrderRefused, VanishedFile
    from migrator.rehearsal import DownCheck, DriftCheck, FileRehearsal, Rehearsal, Replay, check_drift, rehearse
    from migrator.rehearsal_report import file_lines as rehearsal_lines
    from migrator.safety import Safety
    from migrator.schema_snapshot import SchemaObject, schema_digests, take_snapshot
    from migrator.schema_snapshot import Snapshot as SchemaSnapshot
    from migrator.seal import SETTLED_NS
    from migrator.server_session import SessionRefused
    from migrator.source import Migration, collect
    from migrator.statement_locks import RelationLock, StatementLocks
    from migrator.status import MigrationState, Status
    from migrator.store import Store
    from migrator.table_name import DEFAULT_TABLE, TableName

__version__ = "0.1.0"

# Where each public name lives: "module" when the name is the same there, "module:name" when
# it is not (a submodule's name, such as ``lint``, would be shadowed by the submodule itself).
_EXPORTS: dict[str, str] = {
    # the entry point, its settings and its connection
    "Migrator": "migrator.api",
    "Options": "migrator.options",
    "Safety": "migrator.safety",
    "TableName": "migrator.table_name",
    "DEFAULT_TABLE": "migrator.table_name",
    "SETTLED_NS": "migrator.seal",
    "Store": "migrator.store",
    "SessionLocker": "migrator.lock",
    "AdvisoryLocker": "migrator.lock",
    "GOOSE_LOCK_ROW": "migrator.lock",
    "connect": "migrator.dsn",
    "redact": "migrator.dsn",
    "parse_duration": "migrator.durations",
    "milliseconds": "migrator.durations",
    # the files
    "Migration": "migrator.source",
    "collect": "migrator.source",
    "Direction": "migrator.parser",
    "ParsedMigration": "migrator.parser",
    "parse_file": "migrator.parser",
    "parse_sql": "migrator.parser",
    "Step": "migrator.planning",
    "refuse_unknown_target": "migrator.planning",
    "transaction_note": "migrator.own_transaction:note",
    "lint_migrations": "migrator.lint:lint",
    "find_config": "migrator.lint",
    "lint_if_installed": "migrator.lint",
    "squawk_binary": "migrator.lint",
    # results and events
    "Status": "migrator.status",
    "MigrationState": "migrator.status",
    "RunResult": "migrator.events",
    "MigrationResult": "migrator.events",
    "Event": "migrator.events",
    "MigrationFinished": "migrator.events",
    "LockRetry": "migrator.events",
    "EditAccepted": "migrator.events",
    "ChecksumsAdopted": "migrator.events",
    "InterruptedRunFound": "migrator.events",
    "DatabaseAhead": "migrator.events",
    "Ahead": "migrator.events",
    "InterruptedRun": "migrator.interruptions",
    "VanishedFile": "migrator.refusals",
    "Failure": "migrator.errors",
    # the run history
    "History": "migrator.history",
    "Run": "migrator.history",
    "Outcome": "migrator.history",
    "RunPlace": "migrator.history",
    "RunRecorder": "migrator.history",
    # rehearsal and drift
    "Rehearsal": "migrator.rehearsal",
    "DriftCheck": "migrator.rehearsal",
    "rehearse": "migrator.rehearsal",
    "check_drift": "migrator.rehearsal",
    "Verdict": "migrator.data_checks",
    "take_snapshot": "migrator.schema_snapshot",
    "schema_digests": "migrator.schema_snapshot",
    # what a report is made of: parsed files, lint findings, rehearsals, schemas, locks
    "LintFinding": "migrator.lint:Finding",
    "SchemaSnapshot": "migrator.schema_snapshot:Snapshot",
    "SchemaObject": "migrator.schema_snapshot",
    "FileRehearsal": "migrator.rehearsal",
    "DownCheck": "migrator.rehearsal",
    "Replay": "migrator.rehearsal",
    "DataCheck": "migrator.data_checks",
    "StatementLocks": "migrator.statement_locks",
    "RelationLock": "migrator.statement_locks",
    "Drift": "migrator.drift",
    "Difference": "migrator.drift",
    "Statement": "migrator.parser",
    "Command": "migrator.pg_grammar",
    "CommandKind": "migrator.pg_grammar:Kind",
    "RunRecording": "migrator.history:Recording",
    # the operator's words for what the library reports
    "error_message": "migrator.operator_text",
    "ahead_text": "migrator.operator_text",
    "rehearsal_lines": "migrator.rehearsal_report:file_lines",
    # errors (errors.py draws the tree) and refusals
    "MigratorError": "migrator.errors",
    "InputError": "migrator.errors",
    "ParseError": "migrator.errors",
    "DurationError": "migrator.errors",
    "DriftRefused": "migrator.refusals",
    "OutOfOrderRefused": "migrator.refusals",
    "InterruptedRunRefused": "migrator.refusals",
    "GoMigrationRefused": "migrator.planning",
    "SessionRefused": "migrator.server_session",
    "DatabaseError": "migrator.errors",
    "LedgerUnreadable": "migrator.ledger_entries",
    "MigrationFailed": "migrator.errors",
    "Interrupted": "migrator.errors",
    "LockTimeout": "migrator.errors",
    "LintFindings": "migrator.errors",
    "Reported": "migrator.errors",
    "RehearsalFailed": "migrator.errors",
    "DriftFound": "migrator.errors",
}

__all__ = [
    "DEFAULT_TABLE",
    "GOOSE_LOCK_ROW",
    "SETTLED_NS",
    "AdvisoryLocker",
    "Ahead",
    "ChecksumsAdopted",
    "Command",
    "CommandKind",
    "DataCheck",
    "DatabaseAhead",
    "DatabaseError",
    "Difference",
    "Direction",
    "DownCheck",
    "Drift",
    "DriftCheck",
    "DriftFound",
    "DriftRefused",
    "DurationError",
    "EditAccepted",
    "Event",
    "Failure",
    "FileRehearsal",
    "GoMigrationRefused",
    "History",
    "InputError",
    "Interrupted",
    "InterruptedRun",
    "InterruptedRunFound",
    "InterruptedRunRefused",
    "LedgerUnreadable",
    "LintFinding",
    "LintFindings",
    "LockRetry",
    "LockTimeout",
    "Migration",
    "MigrationFailed",
    "MigrationFinished",
    "MigrationResult",
    "MigrationState",
    "Migrator",
    "MigratorError",
    "Options",
    "OutOfOrderRefused",
    "Outcome",
    "ParseError",
    "ParsedMigration",
    "Rehearsal",
    "RehearsalFailed",
    "RelationLock",
    "Replay",
    "Reported",
    "Run",
    "RunPlace",
    "RunRecorder",
    "RunRecording",
    "RunResult",
    "Safety",
    "SchemaObject",
    "SchemaSnapshot",
    "SessionLocker",
    "SessionRefused",
    "Statement",
    "StatementLocks",
    "Status",
    "Step",
    "Store",
    "TableName",
    "VanishedFile",
    "Verdict",
    "__version__",
    "ahead_text",
    "check_drift",
    "collect",
    "connect",
    "error_message",
    "find_config",
    "lint_if_installed",
    "lint_migrations",
    "milliseconds",
    "parse_duration",
    "parse_file",
    "parse_sql",
    "redact",
    "refuse_unknown_target",
    "rehearsal_lines",
    "rehearse",
    "schema_digests",
    "squawk_binary",
    "take_snapshot",
    "transaction_note",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its module the first time it is asked for."""
    try:
        module, _, attribute = _EXPORTS[name].partition(":")
    except KeyError:
        raise AttributeError(f"module 'migrator' has no attribute {name!r}") from None
    value = getattr(import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
