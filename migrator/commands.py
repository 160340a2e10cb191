"""What each command does: its checks, the library calls, and which report it prints (reports.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from migrator import authoring
from migrator.api import Migrator
from migrator.dsn import connect, redact
from migrator.errors import InputError, LintFindings, ParseError
from migrator.history import History, RunRecorder
from migrator.lint import Finding, find_config, lint, squawk_binary
from migrator.operator_text import error_message
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.planning import refuse_drift
from migrator.reports import (
    emit_json,
    print_event,
    print_plan,
    print_result,
    print_statements,
    print_status,
    status_document,
    warn,
)
from migrator.settings import Settings
from migrator.source import Migration, collect, missing_directory
from migrator.status import Status


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
            settings.table, command, lambda: connect(settings.dsn), lambda text: redact(text, settings.dsn)
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


def _database(settings: Settings, *, writes: bool) -> psycopg.Connection:
    if not settings.directory.is_dir():
        raise missing_directory(settings.directory)  # before connecting
    return connect(settings.dsn, read_only=not writes)


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
    with _database(settings, writes=False) as conn:
        found = _read_status(_migrator(conn, settings))
    if settings.as_json:
        emit_json(status_document(found, str(settings.table)))
    else:
        print_status(found)


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
        files = [(m, parse_file(m.path, Direction.UP)) for m in collect(settings.directory)]
    else:
        with _database(settings, writes=False) as conn:
            migrator = _migrator(conn, settings)
            steps = migrator.plan_up(status=_read_status(migrator))
        files = [(s.migration, s.parsed) for s in steps]
    findings = lint(files, find_config(settings.directory))
    for finding in findings:
        print(finding)
    if findings:
        files_hit = len({f.filename for f in findings})
        raise LintFindings(f"lint: {len(findings)} finding(s) in {files_hit} of {len(files)} file(s)")
    print(f"migrator: lint found nothing in {len(files)} file(s)")


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
    direction = Direction.DOWN if settings.down else Direction.UP
    parsed = parse_file(path, direction)
    if settings.as_json:
        emit_json({"statements": [s.sql for s in parsed.statements], "transaction": parsed.use_tx})
    else:
        statements = [(s.line, s.sql) for s in parsed.statements]
        print_statements(f"{path.name} ({direction.value})", parsed.use_tx, statements)


def validate(settings: Settings) -> None:
    migrations = collect(settings.directory)
    problems: list[str] = []
    bad_files = 0
    for migration in migrations:
        # A file's error is usually the same in both directions: report it once.
        found = list(dict.fromkeys(_parse_problems(migration)))
        problems.extend(found)
        bad_files += bool(found)
    parse_problems = len(problems)
    if settings.dsn:
        with connect(settings.dsn, read_only=True) as conn:
            migrator = Migrator(conn, migrations, settings.table, manifest=settings.manifest)
            try:
                refuse_drift(_read_status(migrator))
            except InputError as exc:
                problems.append(error_message(exc))
    for problem in problems:
        print(f"migrator: {problem}", file=sys.stderr)
    if problems:
        found = [f"{bad_files} of {len(migrations)} migration(s) do not parse"] if bad_files else []
        if len(problems) > parse_problems:
            found.append("applied files were edited or removed")
        raise InputError("; ".join(found))
    checked = " and checked against the database" if settings.dsn else ""
    print(f"migrator: {len(migrations)} migration(s) valid{checked}")


def _parse_problems(migration: Migration) -> list[str]:
    problems = []
    for direction in Direction:
        try:
            parse_file(migration.path, direction)
        except ParseError as exc:
            problems.append(str(exc))
    return problems


# -- output ----------------------------------------------------------------------------


def _lint_findings(files: list[tuple[Migration, ParsedMigration]], settings: Settings) -> list[Finding] | None:
    """squawk's findings, or None where squawk is not installed (the image has none)."""
    if squawk_binary() is None:
        return None
    return lint(files, find_config(settings.directory))
