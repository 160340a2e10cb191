"""What each command does: its checks, the library calls, and which report it prints (reports.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg

from migrator import authoring
from migrator.api import Migrator
from migrator.dsn import connect, pgx_options, redact
from migrator.errors import DriftFound, InputError, LintFindings, ParseError, RehearsalFailed
from migrator.history import History, RunRecorder
from migrator.lint import Finding, find_config, lint, squawk_binary
from migrator.operator_text import error_message
from migrator.own_transaction import note
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.planning import refuse_drift
from migrator.reports import (
    emit_json,
    ends_document,
    print_event,
    print_plan,
    print_result,
    print_statements,
    print_status,
    status_document,
    warn,
)
from migrator.settings import SCRATCH_DSN_ENV, Settings
from migrator.source import Migration, collect, missing_directory
from migrator.status import Status
from migrator.store import TableName

T = TypeVar("T")


def version_argument(settings: Settings) -> int:
    text = settings.argument or ""
    # str.isdigit() also takes '²' and Arabic-Indic digits: a version is ASCII digits only.
    if not (text.isascii() and text.isdigit()):
        raise InputError(f"{settings.command}: VERSION must be a whole number written in digits 0-9, got {text!r}")
    return int(text)


def _migrator(conn: psycopg.Connection, settings: Settings, *, record: bool = False) -> Migrator:
    """The migrator for the command; ``record`` makes it record its run in the run history."""
    recorder = None
    if record:
        command = " ".join(filter(None, (settings.command, settings.argument)))
        recorder = RunRecorder(
            settings.table,
            command,
            lambda: connect(settings.dsn),
            lambda text: redact(text, settings.dsn),
            digests=lambda conn: _schema_digests(conn, settings.table),
        )
    return Migrator(
        conn,
        settings.directory,
        settings.table,
        options=settings.options,
        manifest=settings.manifest,
        safety=settings.safety,
        recorder=recorder,
        on_event=print_event,
        run_timeout=settings.run_timeout,
    )


# The rehearsal's and the snapshot's modules are imported where they are used: every command,
# a sealed no-op `up` in Nomad included, would pay for them (40 to 107 ms measured on this
# 2-core machine at load 7).


def _schema_digests(conn: psycopg.Connection, table: TableName) -> dict[str, str]:
    from migrator.schema_snapshot import schema_digests  # noqa: PLC0415

    return schema_digests(conn, table)


def _database(settings: Settings, *, writes: bool) -> psycopg.Connection:
    if not settings.directory.is_dir():
        raise missing_directory(settings.directory)  # before connecting
    return _connect(settings.dsn, read_only=not writes)


def _connect(dsn: str, *, read_only: bool) -> psycopg.Connection:
    if dropped := pgx_options(dsn):
        warn(
            f"ignoring {', '.join(dropped)} in the connection string: options of goose's driver (pgx) that libpq"
            " does not know; the migrator prepares no statement on the server"
        )
    return connect(dsn, read_only=read_only)


def _read_status(migrator: Migrator) -> Status:
    status = migrator.status(tolerate_unreadable_ledger=True)
    if status.ledger_unreadable:
        warn(status.ledger_unreadable)
    return status


# -- writing commands ------------------------------------------------------------------


def up(settings: Settings) -> None:
    target = version_argument(settings) if settings.command == "up-to" else None
    with _database(settings, writes=True) as conn:
        migrator = _migrator(conn, settings, record=True)
        print_result(migrator.up(target=target, by_one=settings.command == "up-by-one", lock_wait=settings.lock_wait))


def down(settings: Settings) -> None:
    target = version_argument(settings) if settings.command == "down-to" else None
    with _database(settings, writes=True) as conn:
        migrator = _migrator(conn, settings, record=True)
        print_result(migrator.down(target=target, reset=settings.command == "reset", lock_wait=settings.lock_wait))


def redo(settings: Settings) -> None:
    with _database(settings, writes=True) as conn:
        print_result(_migrator(conn, settings, record=True).redo(lock_wait=settings.lock_wait))


def migrate_to(settings: Settings) -> None:
    target = None if settings.argument == "latest" else version_argument(settings)
    with _database(settings, writes=True) as conn:
        migrator = _migrator(conn, settings, record=True)
        print_result(migrator.migrate_to(target, lock_wait=settings.lock_wait, rollback_id=settings.rollback_id))


# -- reading commands ------------------------------------------------------------------


def status(settings: Settings) -> None:
    from migrator.drift import changes_since_last_run  # noqa: PLC0415

    with _database(settings, writes=False) as conn:
        found = _read_status(_migrator(conn, settings))
        change = changes_since_last_run(conn, settings.table)
    if settings.as_json:
        document = status_document(found, str(settings.table))
        document["schema_changed"] = change and {"since_run_at": change.run_at.isoformat(), "schemas": change.schemas}
        emit_json(document)
        return
    print_status(found)
    if change is not None:
        print(
            f"\nmigrator: the schema changed since the run at {change.run_at:%Y-%m-%d %H:%M:%S%z}, the last that"
            f" migrated it (schemas: {', '.join(change.schemas)}); `drift --scratch-dsn ...` names each object"
        )


def version(settings: Settings) -> None:
    with _database(settings, writes=False) as conn:
        print(f"migrator: version {_read_status(_migrator(conn, settings)).current}")


def history(settings: Settings) -> None:
    with _database(settings, writes=False) as conn:
        runs = History(conn, settings.table).runs()
    if settings.as_json:
        emit_json({"runs": [run.as_dict() for run in runs]})
        return
    if not runs:
        print("migrator: no recorded runs")
    for run in runs:
        finished = f"{(run.finished_at - run.started_at).total_seconds():.2f}s" if run.finished_at else "-"
        applied = ",".join(map(str, run.applied)) or "-"
        when = f"{run.started_at:%Y-%m-%d %H:%M:%S%z}"
        print(f"{when}  {run.outcome:<11} {finished:>9}  {run.command:<24} applied={applied}", end="")
        print(f"  image={run.image or '-'}  alloc={run.allocation or '-'}")
        if run.error:
            print(f"    {run.error}")


def plan(settings: Settings) -> None:
    with _database(settings, writes=False) as conn:
        migrator = _migrator(conn, settings)
        steps = migrator.plan_up(status=_read_status(migrator))
    print_plan(steps, _lint_findings([(s.migration, s.parsed) for s in steps], settings), as_json=settings.as_json)


def lint_command(settings: Settings) -> None:
    if settings.lint_all:
        files = [(m, parse_file(m.path, Direction.UP)) for m in collect(settings.directory) if not m.go]
    else:
        with _database(settings, writes=False) as conn:
            migrator = _migrator(conn, settings)
            steps = migrator.plan_up(status=_read_status(migrator), sql_only=True)
        files = [(s.migration, s.parsed) for s in steps]
    for migration, parsed in files:
        if (said := note(parsed)) is not None:
            print(f"{migration.filename}: note: {said}")
    findings = lint(files, find_config(settings.directory))
    for finding in findings:
        print(finding)
    if findings:
        files_hit = len({f.filename for f in findings})
        raise LintFindings(f"lint: {len(findings)} finding(s) in {files_hit} of {len(files)} file(s)")
    print(f"migrator: lint found nothing in {len(files)} file(s)")


def _read_against_scratch(settings: Settings, read: Callable[[psycopg.Connection, str], T]) -> T:
    """``read(target, scratch_dsn)`` on a read-only session of the target."""
    if not settings.scratch_dsn:
        raise InputError(
            f"no scratch server: pass --scratch-dsn or set {SCRATCH_DSN_ENV} (a PostgreSQL server where the"
            " migrator may create and drop a throwaway database)"
        )
    with _database(settings, writes=False) as conn:
        return read(conn, settings.scratch_dsn)


def _show(settings: Settings, document: Callable[[], object], text: Callable[[], None]) -> None:
    if settings.as_json:
        emit_json(document())
    else:
        text()


def rehearse(settings: Settings) -> None:
    from migrator import rehearsal  # noqa: PLC0415
    from migrator.rehearsal_report import print_rehearsal, rehearsal_document  # noqa: PLC0415

    found = _read_against_scratch(
        settings,
        lambda conn, scratch: rehearsal.rehearse(
            conn,
            scratch,
            settings.directory,
            settings.table,
            options=settings.options,
            safety=settings.safety,
            exclude_schemas=settings.exclude_schemas,
        ),
    )
    _show(settings, lambda: rehearsal_document(found), lambda: print_rehearsal(found))
    if not found.passed:
        raise RehearsalFailed("rehearsal failed: " + "; ".join(found.failures))


def drift(settings: Settings) -> None:
    from migrator import rehearsal  # noqa: PLC0415
    from migrator.rehearsal_report import drift_document, print_drift_check  # noqa: PLC0415

    found = _read_against_scratch(
        settings,
        lambda conn, scratch: rehearsal.check_drift(
            conn,
            scratch,
            settings.directory,
            settings.table,
            safety=settings.safety,
            exclude_schemas=settings.exclude_schemas,
        ),
    )
    _show(settings, lambda: drift_document(found), lambda: print_drift_check(found))
    if found.drift is None:
        raise RehearsalFailed(f"drift: the applied migrations could not be replayed: {found.replay.message}")
    if found.drift.found:
        raise DriftFound(f"drift: {len(found.drift.lines())} object(s) differ from what the applied migrations build")


# -- commands without a database -------------------------------------------------------


def create(settings: Settings) -> None:
    path = authoring.create(
        settings.directory, settings.argument or "", now=datetime.now(UTC), sequential=settings.sequential
    )
    print(f"migrator: created new file: {path}")


def fix(settings: Settings) -> None:
    for old, new in authoring.fix(settings.directory):
        print(f"RENAMED {old.name} => {new.name}")


def show(settings: Settings) -> None:
    path = Path(settings.argument or "")
    if not path.is_file():
        path = settings.directory / path
    if not path.is_file():
        raise InputError(f"{settings.argument}: no such migration file")
    if path.suffix == ".go":
        raise InputError(f"{settings.argument}: a Go file; show reads SQL migrations")
    direction = Direction.DOWN if settings.down else Direction.UP
    parsed = parse_file(path, direction)
    if settings.as_json:
        emit_json(
            {
                "statements": [s.sql for s in parsed.statements],
                "transaction": parsed.use_tx,
                "transaction_ends": ends_document(parsed),
            }
        )
    else:
        print_statements(f"{path.name} ({direction.value})", parsed)


def validate(settings: Settings) -> None:
    migrations = collect(settings.directory)
    problems: list[str] = []
    bad_files = 0
    readable = [m for m in migrations if not m.go]
    for migration in readable:
        # A file's error is usually the same in both directions: report it once.
        found = list(dict.fromkeys(_parse_problems(migration)))
        problems.extend(found)
        bad_files += bool(found)
    parse_problems = len(problems)
    if settings.dsn:
        with _connect(settings.dsn, read_only=True) as conn:
            migrator = Migrator(conn, migrations, settings.table, manifest=settings.manifest)
            try:
                refuse_drift(_read_status(migrator))
            except InputError as exc:
                problems.append(error_message(exc))
    for problem in problems:
        print(f"migrator: {problem}", file=sys.stderr)
    if problems:
        found = [f"{bad_files} of {len(readable)} migration(s) do not parse"] if bad_files else []
        if len(problems) > parse_problems:
            found.append("applied files were edited or removed")
        raise InputError("; ".join(found))
    checked = " and checked against the database" if settings.dsn else ""
    go = len(migrations) - len(readable)
    unread = f" ({go} Go migration(s) not read: the migrator runs SQL)" if go else ""
    print(f"migrator: {len(readable)} migration(s) valid{checked}{unread}")


def _parse_problems(migration: Migration) -> list[str]:
    """Why each direction of a file does not parse; a direction that ends its own transaction is
    valid goose, and is said on the way (a warning)."""
    problems = []
    for direction in Direction:
        try:
            parsed = parse_file(migration.path, direction)
        except ParseError as exc:
            problems.append(str(exc))
            continue
        if (said := note(parsed)) is not None:
            warn(f"{migration.filename} ({direction.value}): {said}")
    return problems


# -- output ----------------------------------------------------------------------------


def _lint_findings(files: list[tuple[Migration, ParsedMigration]], settings: Settings) -> list[Finding] | None:
    """squawk's findings, or None where squawk is not installed (the image has none)."""
    if squawk_binary() is None:
        return None
    return lint(files, find_config(settings.directory))
