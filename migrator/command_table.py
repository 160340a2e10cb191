"""Every command of the command line, one row each: its help line, its handler, its one
argument and the options it takes (each option's flags and help are defined once, here).
A new command is added here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrator import commands
from migrator.settings import DEFAULT_LOCK_WAIT, Settings

# Each option: its flags and argparse settings. A command lists the ones it takes.
_Option = tuple[tuple[str, ...], dict[str, Any]]
OPTIONS: dict[str, _Option] = {
    "json": (("--json",), {"action": "store_true", "help": "print one JSON document"}),
    "down": (("--down",), {"action": "store_true", "help": "the Down section instead of Up"}),
    "all": (("--all",), {"dest": "lint_all", "action": "store_true", "help": "every file, not only pending ones"}),
    "sequential": (
        ("-s", "--sequential"),
        {"action": "store_true", "help": "next sequential version instead of a UTC timestamp"},
    ),
    "allow-missing": (
        ("--allow-missing",),
        {"action": "store_true", "help": "apply pending files older than the highest applied version"},
    ),
    "allow-edited": (
        ("--allow-edited",),
        {"action": "store_true", "help": "go on this once although an applied file was edited or removed"},
    ),
    "accept-edited": (
        ("--accept-edited",),
        {"action": "store_true", "help": "record the edited applied files' new checksums, then go on"},
    ),
    "allow-interrupted": (
        ("--allow-interrupted",),
        {"action": "store_true", "help": "roll back although a NO TRANSACTION file is recorded as interrupted"},
    ),
    "allow-down": (
        ("--allow-down",),
        {"action": "store_true", "help": "roll back when VERSION is below the database's version"},
    ),
    "rollback-id": (
        ("--rollback-id",),
        {
            "metavar": "ID",
            "help": "the rollback this run carries: once a run with ID completed, going down is not done again",
        },
    ),
    "lock-timeout": (
        ("--lock-timeout",),
        {
            "dest": "lock_wait",
            "metavar": "DURATION",
            "help": f"wait for goose's advisory lock (default {DEFAULT_LOCK_WAIT})",
        },
    ),
    "db-lock-timeout": (
        ("--db-lock-timeout",),
        {
            "metavar": "DURATION",
            "help": "lock_timeout of each attempt of a migration (env MIGRATOR_DB_LOCK_TIMEOUT, default 500ms)",
        },
    ),
    "statement-timeout": (
        ("--statement-timeout",),
        {"metavar": "DURATION", "help": "statement_timeout (env MIGRATOR_STATEMENT_TIMEOUT, default 3h)"},
    ),
    "run-timeout": (
        ("--run-timeout",),
        {
            "metavar": "DURATION",
            "help": "budget of the whole run once it holds the lock: no statement runs past it"
            " (env MIGRATOR_RUN_TIMEOUT, default none)",
        },
    ),
    "lock-retries": (
        ("--lock-retries",),
        {"metavar": "N", "help": "retries of a file blocked by a lock (env MIGRATOR_LOCK_RETRIES, default 15)"},
    ),
    "scratch-dsn": (
        ("--scratch-dsn",),
        {
            "metavar": "DSN",
            "help": "a PostgreSQL server where a throwaway database may be created and dropped"
            " (env MIGRATOR_SCRATCH_DSN); never the target's data",
        },
    ),
    "exclude-schema": (
        ("--exclude-schema",),
        {
            "dest": "exclude_schemas",
            "metavar": "SCHEMA",
            "action": "append",
            "help": "leave SCHEMA out of the drift comparison (may be repeated)",
        },
    ),
}
_APPLYING = ("lock-timeout", "db-lock-timeout", "statement-timeout", "lock-retries", "run-timeout")
_UP = ("allow-missing", "allow-edited", "accept-edited", *_APPLYING)
_DOWN = ("allow-edited", "accept-edited", "allow-interrupted", *_APPLYING)
_READ_PLAN = ("allow-missing", "allow-edited")
_REHEARSING = ("json", "scratch-dsn", "exclude-schema", "db-lock-timeout", "statement-timeout", "lock-retries")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Callable[[Settings], None]
    argument: tuple[str, str] | None = None  # metavar and help of its one positional argument
    options: tuple[str, ...] = ()


COMMANDS = (
    Command("up", "apply every pending migration", commands.up, options=_UP),
    Command("up-by-one", "apply the next pending migration", commands.up, options=_UP),
    Command("up-to", "apply pending migrations up to VERSION", commands.up, ("VERSION", "highest version"), _UP),
    Command("down", "roll back the most recently applied migration", commands.down, options=_DOWN),
    Command(
        "down-to",
        "roll back, newest application first, every migration applied after VERSION",
        commands.down,
        ("VERSION", "version to keep"),
        _DOWN,
    ),
    Command("redo", "roll back the most recently applied migration and apply it again", commands.redo, options=_DOWN),
    Command("reset", "roll back every applied migration, highest version first", commands.down, options=_DOWN),
    Command(
        "migrate-to",
        "move the database to exactly VERSION: up-to when behind, down-to when ahead, nothing when equal",
        commands.migrate_to,
        ("VERSION", "a version of a migration file, or latest"),
        ("allow-down", "rollback-id", *_UP, "allow-interrupted"),
    ),
    Command("status", "applied and pending migrations", commands.status, options=("json",)),
    Command("history", "the recorded runs, newest first", commands.history, options=("json",)),
    Command("version", "the current version (the most recently applied)", commands.version),
    Command(
        "plan",
        "pending migrations and their statements; changes nothing",
        commands.plan,
        options=("json", *_READ_PLAN),
    ),
    Command(
        "lint",
        "squawk's findings on the pending files, by file, statement and line",
        commands.lint_command,
        options=("all", *_READ_PLAN),
    ),
    Command(
        "rehearse",
        "apply the pending migrations to a throwaway copy of the schema on a scratch server: failures,"
        " locks, Down sections, drift and rows that would fail them; the target is only read",
        commands.rehearse,
        options=(*_REHEARSING, *_READ_PLAN),
    ),
    Command(
        "drift",
        "the live schema against what its applied migrations build on a scratch server, object by object;"
        " the target is only read",
        commands.drift,
        options=_REHEARSING,
    ),
    Command(
        "create",
        "write a new migration file",
        commands.create,
        ("NAME", "what the migration does, e.g. add_users"),
        ("sequential",),
    ),
    Command("fix", "renumber timestamped migrations sequentially", commands.fix),
    Command(
        "validate",
        "parse every file both ways; with a database, also find edited applied files",
        commands.validate,
    ),
    Command(
        "show",
        "the statements a file yields and whether it runs in a transaction",
        commands.show,
        ("FILE", "file name or path"),
        ("down", "json"),
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}
