"""The commands that read only the migration files: create, fix, show and validate.

They import no psycopg, so checking files in CI or an editor costs the parser and not a
driver; validate connects (through commands.py) only when it is given a database."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from migrator import authoring
from migrator.cli import arguments as a
from migrator.cli.reports import emit_json, ends_document, print_statements, warn
from migrator.errors import InputError, ParseError
from migrator.own_transaction import note
from migrator.parser import Direction, parse_file
from migrator.source import Migration, collect


def create(args: a.Create) -> None:
    path = authoring.create(args.directory, args.name, now=datetime.now(UTC), sequential=args.sequential)
    print(f"migrator: created new file: {path}")


def fix(args: a.Arguments) -> None:
    for old, new in authoring.fix(args.directory):
        print(f"RENAMED {old.name} => {new.name}")


def show(args: a.Show) -> None:
    path = Path(args.file)
    if not path.is_file():
        path = args.directory / path
    if not path.is_file():
        raise InputError(f"{args.file}: no such migration file")
    if path.suffix == ".go":
        raise InputError(f"{args.file}: a Go file; show reads SQL migrations")
    direction = Direction.DOWN if args.down else Direction.UP
    parsed = parse_file(path, direction, args.environ)
    if args.as_json:
        emit_json(
            {
                "statements": [s.sql for s in parsed.statements],
                "transaction": parsed.use_tx,
                "transaction_ends": ends_document(parsed),
            }
        )
    else:
        print_statements(f"{path.name} ({direction.value})", parsed)


def validate(args: a.Arguments) -> None:
    migrations = collect(args.directory)
    problems: list[str] = []
    bad_files = 0
    readable = [m for m in migrations if not m.go]
    for migration in readable:
        # A file's error is usually the same in both directions: report it once.
        found = list(dict.fromkeys(_parse_problems(migration, args.environ)))
        problems.extend(found)
        bad_files += bool(found)
    parse_problems = len(problems)
    if args.dsn:
        # Only a check against a database pays for psycopg and the library's session modules.
        from migrator.cli.commands import applied_file_problems  # noqa: PLC0415

        problems.extend(applied_file_problems(args, migrations))
    for problem in problems:
        print(f"migrator: {problem}", file=sys.stderr)
    if problems:
        found = [f"{bad_files} of {len(readable)} migration(s) do not parse"] if bad_files else []
        if len(problems) > parse_problems:
            found.append("applied files were edited or removed")
        raise InputError("; ".join(found))
    checked = " and checked against the database" if args.dsn else ""
    go = len(migrations) - len(readable)
    unread = f" ({go} Go migration(s) not read: the migrator runs SQL)" if go else ""
    print(f"migrator: {len(readable)} migration(s) valid{checked}{unread}")


def _parse_problems(migration: Migration, environ: Mapping[str, str]) -> list[str]:
    """Why each direction of a file does not parse; a direction that ends its own transaction is
    valid goose, and is said on the way (a warning)."""
    problems = []
    for direction in Direction:
        try:
            parsed = parse_file(migration.path, direction, environ)
        except ParseError as exc:
            problems.append(str(exc))
            continue
        if (said := note(parsed)) is not None:
            warn(f"{migration.filename} ({direction.value}): {said}")
    return problems
