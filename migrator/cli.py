"""``python -m migrator [--dir DIR] [--table NAME] [--dsn DSN] COMMAND [ARGS]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from migrator import authoring
from migrator.dsn import connect, redact
from migrator.durations import parse_duration
from migrator.errors import EXIT_FAILED, EXIT_OK, InputError, MigratorError, ParseError
from migrator.parser import Direction, parse_file
from migrator.runner import Runner, Status, Step
from migrator.source import collect
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
    "create": ("NAME", False),
    "fix": (None, False),
    "validate": (None, False),
    "show": ("FILE", False),
}
_NEEDS_NO_DATABASE = {"create", "fix", "validate", "show"}


@dataclass(frozen=True)
class Settings:
    command: str
    argument: str | None
    directory: Path
    table: TableName
    dsn: str
    as_json: bool
    lock_timeout: float
    allow_missing: bool
    down: bool
    sequential: bool


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m migrator",
        description="Apply goose SQL migrations to PostgreSQL, goose-compatibly.",
        epilog="Exit codes: 0 done, 1 migration or database failed, 2 bad input or usage, 3 lock not acquired.",
    )
    parser.add_argument("--dir", help="migrations directory (env GOOSE_MIGRATION_DIR, default: migrations)")
    parser.add_argument("--table", help=f"version table (env GOOSE_TABLE, default: {DEFAULT_TABLE})")
    parser.add_argument("--dsn", help="database URL (env POSTGRES_CONNECTION_STRING or GOOSE_DBSTRING)")
    parser.add_argument("--json", action="store_true", help="one JSON document (status, show, plan)")
    parser.add_argument("--lock-timeout", default="15m", help="how long to wait for the goose lock (default 15m)")
    parser.add_argument(
        "--allow-missing", action="store_true", help="apply pending files older than the current version"
    )
    parser.add_argument("--down", action="store_true", help="show: the Down section instead of Up")
    parser.add_argument(
        "-s", "--sequential", action="store_true", help="create: next sequential version, not a timestamp"
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help=", ".join(COMMANDS))
    parser.add_argument("args", nargs="*", help="VERSION for up-to/down-to, NAME for create, FILE for show")
    return parser


def parse_settings(argv: Sequence[str], environ: dict[str, str] | os._Environ[str]) -> Settings:
    parser = _build_parser()
    ns = parser.parse_intermixed_args(argv)
    wanted, _ = COMMANDS[ns.command]
    extra = ns.args[1:] if ns.command == "create" and ns.args[1:] == ["sql"] else ns.args
    if (wanted is None and extra) or (wanted is not None and len(extra) != 1):
        parser.error(f"{ns.command} takes {wanted or 'no argument'}, got {' '.join(ns.args) or 'none'}")
    try:
        lock_timeout = parse_duration(ns.lock_timeout)
    except ValueError as exc:
        parser.error(f"--lock-timeout: {exc}")
    return Settings(
        command=ns.command,
        argument=extra[0] if wanted else None,
        directory=Path(ns.dir or environ.get("GOOSE_MIGRATION_DIR") or "migrations"),
        table=TableName.parse(ns.table or environ.get("GOOSE_TABLE") or DEFAULT_TABLE),
        dsn=ns.dsn or environ.get("POSTGRES_CONNECTION_STRING") or environ.get("GOOSE_DBSTRING") or "",
        as_json=ns.json,
        lock_timeout=lock_timeout,
        allow_missing=ns.allow_missing,
        down=ns.down,
        sequential=ns.sequential,
    )


def _version_argument(settings: Settings) -> int:
    text = settings.argument or ""
    if not text.isdigit():
        raise InputError(f"{settings.command}: VERSION must be a non-negative integer, got {text!r}")
    return int(text)


def _emit_json(document: object) -> None:
    print(json.dumps(document, indent=2))


def _print_status(status: Status, settings: Settings) -> None:
    if settings.as_json:
        _emit_json(
            {
                "table": str(settings.table),
                "current": status.current,
                "migrations": [
                    {
                        "version": s.migration.version,
                        "name": s.migration.filename,
                        "applied": s.applied_at is not None,
                        "applied_at": s.applied_at.isoformat() if s.applied_at else None,
                    }
                    for s in status.migrations
                ],
                "pending": [m.version for m in status.pending],
                "unknown_applied": status.unknown_applied,
            }
        )
        return
    print("    Applied At                  Migration")
    print("    =======================================")
    for state in status.migrations:
        when = state.applied_at.strftime("%a %b %e %H:%M:%S %Y") if state.applied_at else "Pending"
        print(f"    {when:<24} -- {state.migration.filename}")
    for version in status.unknown_applied:
        print(f"    {'Applied, no file':<24} -- version {version}")


def _steps_json(steps: list[Step]) -> list[dict[str, object]]:
    return [
        {
            "version": step.migration.version,
            "name": step.migration.filename,
            "transaction": step.parsed.use_tx,
            "statements": [s.sql for s in step.parsed.statements],
        }
        for step in steps
    ]


def _print_statements(title: str, use_tx: bool, statements: Sequence[tuple[int, str]]) -> None:
    mode = "in one transaction" if use_tx else "NO TRANSACTION"
    print(f"-- {title}: {len(statements)} statement(s), {mode}")
    for number, (line, text) in enumerate(statements, start=1):
        print(f"-- statement {number} (line {line})\n{text}")


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
        _print_statements(
            f"{path.name} ({direction.value})", parsed.use_tx, [(s.line, s.sql) for s in parsed.statements]
        )


def _validate(settings: Settings) -> None:
    migrations = collect(settings.directory)
    problems: list[ParseError] = []
    for migration in migrations:
        for direction in Direction:
            try:
                parse_file(migration.path, direction)
            except ParseError as exc:
                problems.append(exc)
    for problem in problems:
        print(f"migrator: {problem}", file=sys.stderr)
    if problems:
        raise InputError(f"{len(problems)} problem(s) in {len(migrations)} migration(s)")
    print(f"migrator: {len(migrations)} migration(s) valid")


def _run_with_database(settings: Settings) -> None:
    _, writes = COMMANDS[settings.command]
    migrations = collect(settings.directory)
    with connect(settings.dsn, read_only=not writes) as conn:
        runner = Runner(conn, migrations, settings.table)
        timeout = settings.lock_timeout
        match settings.command:
            case "status":
                _print_status(runner.status(), settings)
            case "version":
                print(f"migrator: version {runner.status().current}")
            case "plan":
                steps = runner.plan_up(allow_missing=settings.allow_missing)
                if settings.as_json:
                    _emit_json({"pending": _steps_json(steps)})
                elif not steps:
                    print("migrator: nothing pending")
                for step in [] if settings.as_json else steps:
                    statements = [(s.line, s.sql) for s in step.parsed.statements]
                    _print_statements(step.migration.filename, step.parsed.use_tx, statements)
            case "up":
                runner.up(allow_missing=settings.allow_missing, lock_timeout=timeout)
            case "up-by-one":
                runner.up(by_one=True, allow_missing=settings.allow_missing, lock_timeout=timeout)
            case "up-to":
                target = _version_argument(settings)
                runner.up(target=target, allow_missing=settings.allow_missing, lock_timeout=timeout)
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
            path = authoring.create(
                settings.directory, settings.argument or "", now=now, sequential=settings.sequential
            )
            print(f"migrator: created new file: {path}")
        case "fix":
            for old, new in authoring.fix(settings.directory):
                print(f"RENAMED {old.name} => {new.name}")
        case "validate":
            _validate(settings)
        case "show":
            _show(settings)
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
