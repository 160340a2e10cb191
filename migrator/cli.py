"""``python -m migrator [--dir DIR] [--table NAME] [--dsn DSN] COMMAND [ARGS] [OPTIONS]``.

The commands are the rows of ``command_table.COMMANDS``; this module turns argv and the
environment into ``Settings``, runs the command's handler, and turns errors into one line
and an exit code. Options belong to the commands they apply to; the global ones may stand
before or after the command, as goose allows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import psycopg

from migrator import __version__
from migrator.command_table import BY_NAME, COMMANDS, OPTIONS
from migrator.dsn import redact
from migrator.durations import parse_duration
from migrator.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Interrupted, MigratorError, Reported
from migrator.operator_text import error_message
from migrator.options import Options
from migrator.safety import Safety
from migrator.settings import DEFAULT_LOCK_WAIT, SCRATCH_DSN_ENV, Settings, read_manifest
from migrator.store import DEFAULT_TABLE, TableName

PROG = "python -m migrator"
EXIT_CODES = (
    "exit codes: 0 done, 1 a migration or the database failed, 2 bad input or usage,"
    " 3 lock not acquired in time, 4 lint findings, 5 drift found, 130/143 interrupted by SIGINT/SIGTERM"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class UsageError(MigratorError):
    exit_code = EXIT_BAD_INPUT


def _add_globals(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("global options")
    group.add_argument("--dir", help="migrations directory (env GOOSE_MIGRATION_DIR, default migrations)")
    group.add_argument("--table", help=f"version table (env GOOSE_TABLE, default {DEFAULT_TABLE})")
    group.add_argument("--dsn", help="database URL (env POSTGRES_CONNECTION_STRING or GOOSE_DBSTRING)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Apply goose SQL migrations to PostgreSQL, goose-compatibly.", epilog=EXIT_CODES
    )
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    _add_globals(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help, epilog=EXIT_CODES)
        if command.argument:
            metavar, help_text = command.argument
            sub.add_argument("argument", metavar=metavar, help=help_text)
        if command.name == "create":
            sub.add_argument("kind", nargs="?", choices=["sql"], metavar="sql", help="goose's type word; only sql")
        for name in command.options:
            flags, settings = OPTIONS[name]
            sub.add_argument(*flags, **settings)
        _add_globals(sub)
    return parser


def _duration(flag: str, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _safety(ns: argparse.Namespace, environ: Mapping[str, str]) -> Safety:
    defaults = Safety()
    retries = getattr(ns, "lock_retries", None) or environ.get("MIGRATOR_LOCK_RETRIES")
    if retries is not None and not (retries.isascii() and retries.isdigit()):
        raise UsageError(f"--lock-retries (or MIGRATOR_LOCK_RETRIES) must be a whole number, got {retries!r}")
    return Safety(
        lock_timeout=_duration(
            "--db-lock-timeout",
            getattr(ns, "db_lock_timeout", None) or environ.get("MIGRATOR_DB_LOCK_TIMEOUT"),
            defaults.lock_timeout,
        ),
        statement_timeout=_duration(
            "--statement-timeout",
            getattr(ns, "statement_timeout", None) or environ.get("MIGRATOR_STATEMENT_TIMEOUT"),
            defaults.statement_timeout,
        ),
        lock_retries=int(retries) if retries is not None else defaults.lock_retries,
    )


def _run_timeout(ns: argparse.Namespace, environ: Mapping[str, str]) -> float | None:
    value = ns.run_timeout or environ.get("MIGRATOR_RUN_TIMEOUT")
    return None if value is None else _duration("--run-timeout", value, 0)


_ROLLBACK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _rollback_id(value: str | None) -> str | None:
    if value is not None and not _ROLLBACK_ID.fullmatch(value):
        raise UsageError(f"--rollback-id must be 1 to 64 letters, digits, '.', '_' or '-', got {value!r}")
    return value


_GLOBALS_WITH_VALUE = ("--dir", "--table", "--dsn")


def _command_first(argv: Sequence[str]) -> list[str]:
    """Options written before the command (as goose allows) moved after it, where the
    command's own parser checks that they belong to it."""
    with_value = {*_GLOBALS_WITH_VALUE, *(f for flags, kw in OPTIONS.values() if "metavar" in kw for f in flags)}
    before: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in BY_NAME:
            return [token, *before, *argv[index + 1 :]]
        if token == "--version":
            break
        before.append(token)
        if token in with_value and index + 1 < len(argv):
            index += 1
            before.append(argv[index])
        index += 1
    return list(argv)


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    ns, unknown = build_parser().parse_known_args(_command_first(argv))
    if unknown:
        # argparse blames the top-level parser; the options a command takes are in its own help.
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see `{PROG} {ns.command} --help`)")
    command = BY_NAME[ns.command]
    applies = "db-lock-timeout" in command.options
    return Settings(
        command=ns.command,
        argument=getattr(ns, "argument", None),
        directory=Path(ns.dir or environ.get("GOOSE_MIGRATION_DIR") or "migrations"),
        table=TableName.parse(ns.table or environ.get("GOOSE_TABLE") or DEFAULT_TABLE),
        dsn=ns.dsn or environ.get("POSTGRES_CONNECTION_STRING") or environ.get("GOOSE_DBSTRING") or "",
        as_json=getattr(ns, "json", False),
        lock_wait=_duration("--lock-timeout", getattr(ns, "lock_wait", None) or DEFAULT_LOCK_WAIT, 0),
        safety=_safety(ns, environ) if applies else Safety(),
        options=Options(
            allow_missing=getattr(ns, "allow_missing", False),
            allow_edited=getattr(ns, "allow_edited", False),
            accept_edited=getattr(ns, "accept_edited", False),
            allow_interrupted=getattr(ns, "allow_interrupted", False),
            allow_down=getattr(ns, "allow_down", False),
        ),
        down=getattr(ns, "down", False),
        manifest=read_manifest(environ),
        sequential=getattr(ns, "sequential", False),
        lint_all=getattr(ns, "lint_all", False),
        scratch_dsn=getattr(ns, "scratch_dsn", None) or environ.get(SCRATCH_DSN_ENV) or "",
        exclude_schemas=tuple(getattr(ns, "exclude_schemas", None) or ()),
        rollback_id=_rollback_id(getattr(ns, "rollback_id", None)),
        run_timeout=_run_timeout(ns, environ) if "run-timeout" in command.options else None,
    )


class _Terminated:
    """SIGTERM (Nomad stopping the task) is handled as Ctrl-C is: psycopg cancels the running
    statement, the migrator says what was left, and the exit code tells which signal came."""

    received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt


def _report(message: str, exit_code: int, as_json: bool) -> int:
    print(f"migrator: error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit_code": exit_code}))
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    terminated = _Terminated()
    signal.signal(signal.SIGTERM, terminated)
    dsn, as_json = "", False
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ)
        dsn, as_json = settings.dsn, settings.as_json
        BY_NAME[settings.command].handler(settings)
    except Interrupted as exc:
        code = 128 + signal.SIGTERM if terminated.received else exc.exit_code
        return _report(redact(str(exc), dsn), code, as_json)
    except MigratorError as exc:
        return _report(redact(error_message(exc), dsn), exc.exit_code, as_json and not isinstance(exc, Reported))
    except psycopg.Error as exc:
        return _report("database: " + " ".join(redact(str(exc), dsn).split()), EXIT_FAILED, as_json)
    except KeyboardInterrupt:
        code = 128 + signal.SIGTERM if terminated.received else 128 + signal.SIGINT
        return _report("interrupted: files applied before this point stay applied; see `status`", code, as_json)
    return EXIT_OK
