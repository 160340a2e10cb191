"""``python -m migrator [--dir DIR] [--table NAME] [--dsn DSN] COMMAND [ARGS]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from migrator import authoring
from migrator.dsn import connect, redact
from migrator.durations import parse_duration
from migrator.errors import EXIT_FAILED, EXIT_OK, InputError, MigratorError, ParseError
from migrator.lint import Finding, find_config, lint, squawk_binary
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.runner import Runner, Safety, Status, Step, describe_interruption
from migrator.source import Migration, collect, missing_directory
from migrator.store import DEFAULT_TABLE, TableName

COMMANDS = {
    # command: (positional argument it takes, whether it writes to the database)
    "up": (None, True),
    "up-by-one": (None, True),
    "up-to": ("VERSION", True),
    "down": (None, True),
    "down-to": ("VERSION", True),
    "redo": (None, True),
    "reset": (None, True),
    "status": (None, False),
    "version": (None, False),
    "plan": (None, False),
    "lint": (None, False),
    "create": ("NAME", False),
    "fix": (None, False),
    "validate": (None, False),
    "show": ("FILE", False),
}


@dataclass(frozen=True)
class Settings:
    command: str
    argument: str | None
    directory: Path
    table: TableName
    dsn: str
    as_json: bool
    lock_timeout: float
    safety: Safety
    allow_missing: bool
    allow_edited: bool
    down: bool
    sequential: bool
    lint_all: bool


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m migrator",
        description="Apply goose SQL migrations to PostgreSQL, goose-compatibly.",
        epilog="Exit codes: 0 done, 1 migration or database failed, 2 bad input or usage, 3 lock not acquired.",
    )
    add = parser.add_argument
    add("--dir", help="migrations directory (env GOOSE_MIGRATION_DIR, default: migrations)")
    add("--table", help=f"version table (env GOOSE_TABLE, default: {DEFAULT_TABLE})")
    add("--dsn", help="database URL (env POSTGRES_CONNECTION_STRING or GOOSE_DBSTRING)")
    add("--json", action="store_true", help="one JSON document (status, show, plan)")
    add("--lock-timeout", default="15m", help="how long to wait for the goose advisory lock (default 15m)")
    add("--db-lock-timeout", help="lock_timeout of each migration (env MIGRATOR_DB_LOCK_TIMEOUT, default 5s)")
    add("--statement-timeout", help="statement_timeout of each migration (env MIGRATOR_STATEMENT_TIMEOUT, default 1h)")
    add("--lock-retries", help="retries of a file blocked by a lock (env MIGRATOR_LOCK_RETRIES, default 5)")
    add("--allow-missing", action="store_true", help="apply pending files older than the current version")
    add("--allow-edited", action="store_true", help="go on although an applied file was edited or removed")
    add("--down", action="store_true", help="show: the Down section instead of Up")
    add("--all", dest="lint_all", action="store_true", help="lint: every file, not only the pending ones")
    add("-s", "--sequential", action="store_true", help="create: next sequential version, not a timestamp")
    add("command", choices=sorted(COMMANDS), metavar="COMMAND", help=", ".join(COMMANDS))
    add("args", nargs="*", help="VERSION for up-to/down-to, NAME for create, FILE for show")
    return parser


def _safety(ns: argparse.Namespace, environ: Mapping[str, str]) -> Safety:
    defaults = Safety()
    lock = ns.db_lock_timeout or environ.get("MIGRATOR_DB_LOCK_TIMEOUT")
    statement = ns.statement_timeout or environ.get("MIGRATOR_STATEMENT_TIMEOUT")
    retries = ns.lock_retries or environ.get("MIGRATOR_LOCK_RETRIES")
    if retries is not None and not retries.isdigit():
        raise ValueError(f"--lock-retries must be a whole number, got {retries!r}")
    return Safety(
        lock_timeout=parse_duration(lock) if lock else defaults.lock_timeout,
        statement_timeout=parse_duration(statement) if statement else defaults.statement_timeout,
        lock_retries=int(retries) if retries is not None else defaults.lock_retries,
    )


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    parser = _build_parser()
    ns = parser.parse_intermixed_args(argv)
    wanted, _ = COMMANDS[ns.command]
    extra = ns.args[1:] if ns.command == "create" and ns.args[1:] == ["sql"] else ns.args
    if (wanted is None and extra) or (wanted is not None and len(extra) != 1):
        parser.error(f"{ns.command} takes {wanted or 'no argument'}, got {' '.join(ns.args) or 'none'}")
    try:
        lock_timeout = parse_duration(ns.lock_timeout)
        safety = _safety(ns, environ)
    except ValueError as exc:
        parser.error(str(exc))
    return Settings(
        command=ns.command,
        argument=extra[0] if wanted else None,
        directory=Path(ns.dir or environ.get("GOOSE_MIGRATION_DIR") or "migrations"),
        table=TableName.parse(ns.table or environ.get("GOOSE_TABLE") or DEFAULT_TABLE),
        dsn=ns.dsn or environ.get("POSTGRES_CONNECTION_STRING") or environ.get("GOOSE_DBSTRING") or "",
        as_json=ns.json,
        lock_timeout=lock_timeout,
        safety=safety,
        allow_missing=ns.allow_missing,
        allow_edited=ns.allow_edited,
        down=ns.down,
        sequential=ns.sequential,
        lint_all=ns.lint_all,
    )


def _version_argument(settings: Settings) -> int:
    text = settings.argument or ""
    if not text.isdigit():
        raise InputError(f"{settings.command}: VERSION must be a non-negative integer, got {text!r}")
    return int(text)


def _emit_json(document: object) -> None:
    print(json.dumps(document, indent=2))


def _print_status(status: Status, settings: Settings) -> None:
    edited = {m.version for m in status.edited}
    if settings.as_json:
        _emit_json(
            {
                "table": str(settings.table),
                "current": status.current,
                "migrations": [
                    {
                        "version": s.migration.version,
                        "name": s.migration.filename,
                        "applied": s.applied,
                        "applied_at": s.applied_at.isoformat() if s.applied_at else None,
                        "edited": s.migration.version in edited,
                    }
                    for s in status.migrations
                ],
                "pending": [m.version for m in status.pending],
                "unknown_applied": status.unknown_applied,
                "edited": sorted(edited),
                "vanished": [e.version for e in status.vanished],
                "interrupted": [
                    {"version": e.version, "name": e.filename, "state": e.state.value,
                     "statements_done": e.statements_done, "statements_total": e.statements_total}
                    for e in status.interrupted
                ],
            }
        )  # fmt: skip
        return
    print("    Applied At                  Migration")
    print("    =======================================")
    for state in status.migrations:
        when = state.applied_at.strftime("%a %b %e %H:%M:%S %Y") if state.applied_at else "Pending"
        note = "  (EDITED since applied)" if state.migration.version in edited else ""
        print(f"    {when:<24} -- {state.migration.filename}{note}")
    for version in status.unknown_applied:
        vanished = next((e.filename for e in status.vanished if e.version == version), None)
        what = f"{vanished} (file REMOVED since applied)" if vanished else f"version {version}"
        print(f"    {'Applied, no file':<24} -- {what}")
    for entry in status.interrupted:
        print(
            f"\nmigrator: {describe_interruption(entry)}. Its statements are not rolled back: check what"
            " the next statement would have done, repair by hand, then run `up` (or `down`) again."
        )


def _lint_findings(files: list[tuple[Migration, ParsedMigration]], settings: Settings) -> list[Finding] | None:
    """squawk's findings, or None where squawk is not installed (the image has none)."""
    if squawk_binary() is None:
        return None
    return lint(files, find_config(settings.directory))


def _print_statements(title: str, use_tx: bool, statements: Sequence[tuple[int, str]]) -> None:
    mode = "in one transaction" if use_tx else "NO TRANSACTION"
    print(f"-- {title}: {len(statements)} statement(s), {mode}")
    for number, (line, text) in enumerate(statements, start=1):
        print(f"-- statement {number} (line {line})\n{text}")


def _plan(steps: list[Step], settings: Settings) -> None:
    findings = _lint_findings([(s.migration, s.parsed) for s in steps], settings)
    if settings.as_json:
        _emit_json(
            {
                "pending": [
                    {
                        "version": step.migration.version,
                        "name": step.migration.filename,
                        "transaction": step.parsed.use_tx,
                        "statements": [s.sql for s in step.parsed.statements],
                        "lint": None
                        if findings is None
                        else [f.as_dict() for f in findings if f.filename == step.migration.filename],
                    }
                    for step in steps
                ]
            }
        )
        return
    if not steps:
        print("migrator: nothing pending")
    for step in steps:
        statements = [(s.line, s.sql) for s in step.parsed.statements]
        _print_statements(step.migration.filename, step.parsed.use_tx, statements)
    for finding in findings or []:
        print(f"-- lint: {finding}")


def _lint(files: list[tuple[Migration, ParsedMigration]], settings: Settings) -> None:
    findings = lint(files, find_config(settings.directory))
    for finding in findings:
        print(finding)
    if findings:
        files_hit = len({f.filename for f in findings})
        raise InputError(f"lint: {len(findings)} finding(s) in {files_hit} of {len(files)} file(s)")
    print(f"migrator: lint found nothing in {len(files)} file(s)")


def _show(settings: Settings) -> None:
    path = Path(settings.argument or "")
    if not path.is_file():
        path = settings.directory / path
    if not path.is_file():
        raise InputError(f"{settings.argument}: no such migration file")
    direction = Direction.DOWN if settings.down else Direction.UP
    parsed = parse_file(path, direction)
    if settings.as_json:
        _emit_json({"statements": [s.sql for s in parsed.statements], "transaction": parsed.use_tx})
    else:
        statements = [(s.line, s.sql) for s in parsed.statements]
        _print_statements(f"{path.name} ({direction.value})", parsed.use_tx, statements)


def _validate(settings: Settings) -> None:
    migrations = collect(settings.directory)
    problems: list[str] = []
    for migration in migrations:
        for direction in Direction:
            try:
                parse_file(migration.path, direction)
            except ParseError as exc:
                problems.append(str(exc))
    if settings.dsn:
        with connect(settings.dsn, read_only=True) as conn:
            runner = Runner(conn, migrations, settings.table)
            try:
                runner.refuse_drift(runner.status())
            except InputError as exc:
                problems.append(str(exc))
    for problem in problems:
        print(f"migrator: {problem}", file=sys.stderr)
    if problems:
        raise InputError(f"{len(problems)} problem(s) in {len(migrations)} migration(s)")
    checked = " and checked against the database" if settings.dsn else ""
    print(f"migrator: {len(migrations)} migration(s) valid{checked}")


def _run_with_database(settings: Settings) -> None:
    _, writes = COMMANDS[settings.command]
    if not settings.directory.is_dir():
        raise missing_directory(settings.directory)  # before connecting
    with connect(settings.dsn, read_only=not writes) as conn:
        runner = Runner(conn, settings.directory, settings.table, safety=settings.safety)
        timeout = settings.lock_timeout
        missing, edited = settings.allow_missing, settings.allow_edited
        match settings.command:
            case "status":
                _print_status(runner.status(), settings)
            case "version":
                print(f"migrator: version {runner.status().current}")
            case "plan":
                _plan(runner.plan_up(allow_missing=missing, allow_edited=edited), settings)
            case "lint":
                _lint(
                    [(s.migration, s.parsed) for s in runner.plan_up(allow_missing=missing, allow_edited=edited)],
                    settings,
                )
            case "up":
                runner.up(lock_timeout=timeout, allow_missing=missing, allow_edited=edited)
            case "up-by-one":
                runner.up(by_one=True, lock_timeout=timeout, allow_missing=missing, allow_edited=edited)
            case "up-to":
                target = _version_argument(settings)
                runner.up(target=target, lock_timeout=timeout, allow_missing=missing, allow_edited=edited)
            case "down":
                runner.down(lock_timeout=timeout)
            case "down-to":
                runner.down(target=_version_argument(settings), lock_timeout=timeout)
            case "reset":
                runner.down(target=0, lock_timeout=timeout)
            case "redo":
                runner.redo(lock_timeout=timeout)


def run(settings: Settings) -> None:
    match settings.command:
        case "create":
            now = datetime.now(UTC)
            name = settings.argument or ""
            path = authoring.create(settings.directory, name, now=now, sequential=settings.sequential)
            print(f"migrator: created new file: {path}")
        case "fix":
            for old, new in authoring.fix(settings.directory):
                print(f"RENAMED {old.name} => {new.name}")
        case "validate":
            _validate(settings)
        case "show":
            _show(settings)
        case "lint" if settings.lint_all:
            migrations = collect(settings.directory)
            _lint([(m, parse_file(m.path, Direction.UP)) for m in migrations], settings)
        case _:
            _run_with_database(settings)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except InputError as exc:
        print(f"migrator: error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        run(settings)
    except MigratorError as exc:
        print(f"migrator: error: {redact(str(exc), settings.dsn)}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:
        reason = " ".join(redact(str(exc), settings.dsn).split())
        print(f"migrator: error: database: {reason}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("migrator: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK
