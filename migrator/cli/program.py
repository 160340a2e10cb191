"""``python -m migrator [--dir DIR] [--table NAME] [--dsn DSN] COMMAND [ARGS] [OPTIONS]``.

The commands are the rows of ``command_table.COMMANDS``; this module builds the parser from
what each command takes (arguments.py), turns argv and the environment into the command's
arguments, runs its handler, and turns errors into one line and an exit code (exit_codes.py).
Options belong to the commands they apply to; the global ones may stand before or after the
command, as goose allows. Nothing here imports psycopg: ``--help`` and ``--version`` do not
pay for it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from types import FrameType
from typing import NoReturn

from migrator import __version__
from migrator.cli import flags
from migrator.cli.arguments import Arguments, Json
from migrator.cli.command_table import BY_NAME, COMMANDS, Command
from migrator.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, HELP, exit_code
from migrator.cli.flags import UsageError
from migrator.errors import Interrupted, MigratorError, Reported

PROG = "python -m migrator"
_GLOBALS = "global options"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's name and help line, the global options, and the arguments and options
    of ``command`` alone: a run parses one command, and building all of them cost every start
    a few milliseconds of argparse."""
    parser = _Parser(prog=PROG, description="Apply goose SQL migrations to PostgreSQL, goose-compatibly.", epilog=HELP)
    parser.add_argument("--version", action="version", version=f"migrator {__version__}")
    everywhere = parser.add_argument_group(_GLOBALS)
    for dest, source, default in flags.sources(Arguments):
        if source.everywhere:
            source.add_to(everywhere, dest, default)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    for row in COMMANDS:
        sub = subparsers.add_parser(row.name, help=row.help, description=row.help, epilog=HELP)
        if row.name == command:
            flags.add_arguments(row.takes, sub, _GLOBALS)
    return parser


@cache
def _flags_taking_values() -> frozenset[str]:
    """Every command's options that take a value: read only when an option comes before the
    command, so that a run written the usual way does not walk every command's options."""
    return frozenset(
        flag
        for command in COMMANDS
        for _, source, _ in flags.sources(command.takes)
        if source.takes_value
        for flag in source.flags
    )


def _command_first(argv: Sequence[str]) -> list[str]:
    """Options written before the command (as goose allows) moved after it, where the
    command's own parser checks that they belong to it."""
    before: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token in BY_NAME:
            return [token, *before, *argv[index + 1 :]]
        if token == "--version":
            break
        before.append(token)
        if token in _flags_taking_values() and index + 1 < len(argv):
            index += 1
            before.append(argv[index])
        index += 1
    return list(argv)


def parse_arguments(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Command, Arguments]:
    """The command argv names, and what it takes, from argv and then the environment."""
    ordered = _command_first(argv)
    named = ordered[0] if ordered and ordered[0] in BY_NAME else None
    ns, unknown = build_parser(named).parse_known_args(ordered)
    if unknown:
        # argparse blames the top-level parser; the options a command takes are in its own help.
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see `{PROG} {ns.command} --help`)")
    command = BY_NAME[ns.command]
    return command, flags.read(command.takes, vars(ns), environ, command.name)


class _Terminated:
    """SIGTERM (Nomad stopping the task) is handled as Ctrl-C is: psycopg cancels the running
    statement, the migrator says what was left, and the exit code tells which signal came."""

    received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt


def _report(message: str, code: int, as_json: bool) -> int:
    print(f"migrator: error: {message}", file=sys.stderr)
    if as_json:
        import json  # noqa: PLC0415

        print(json.dumps({"error": message, "exit_code": code}))
    return code


def _redact(text: str, dsn: str) -> str:
    from migrator.dsn import redact  # noqa: PLC0415  (psycopg: imported once a command runs)

    return redact(text, dsn)


def main(argv: Sequence[str] | None = None) -> int:
    terminated = _Terminated()
    signal.signal(signal.SIGTERM, terminated)
    dsn, as_json = "", False
    try:
        command, arguments = parse_arguments(sys.argv[1:] if argv is None else argv, os.environ)
        dsn, as_json = arguments.dsn, isinstance(arguments, Json) and arguments.as_json
        command.run(arguments)
    except Interrupted as exc:
        code = EXIT_TERMINATED if terminated.received else exit_code(exc)
        return _report(_redact(str(exc), dsn), code, as_json)
    except MigratorError as exc:
        from migrator.operator_text import error_message  # noqa: PLC0415

        reported = isinstance(exc, Reported)
        return _report(_redact(error_message(exc), dsn), exit_code(exc), as_json and not reported)
    except KeyboardInterrupt:
        code = EXIT_TERMINATED if terminated.received else EXIT_INTERRUPTED
        return _report("interrupted: files applied before this point stay applied; see `status`", code, as_json)
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")  # a database error can only come once psycopg was imported
        if psycopg is None or not isinstance(exc, psycopg.Error):
            raise
        return _report("database: " + " ".join(_redact(str(exc), dsn).split()), exit_code(exc), as_json)
    return EXIT_OK
