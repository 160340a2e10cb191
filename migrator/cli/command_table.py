"""Every command of the command line, one row each: its help line, the class of what it takes
(arguments.py: its argument, its options and whether it writes) and its handler, a function of
commands.py (or file_commands.py, for those that read only files) imported only when the
command runs (``--help`` and ``--version`` import neither psycopg nor pglast, the file commands
no psycopg). A new command is a row here, its class and its handler."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from migrator.cli import arguments as a


@dataclass(frozen=True)
class Command:
    """A command's row: its name and help line, the class of what it takes, and its handler."""

    name: str
    help: str
    takes: type[a.Arguments]
    handler: str  # its function in migrator.cli.<module>
    module: str = "commands"

    def run(self, arguments: a.Arguments) -> None:
        handler = getattr(importlib.import_module(f"migrator.cli.{self.module}"), self.handler)
        handler(arguments)


COMMANDS = (
    Command("up", "apply every pending migration", a.Up, "up"),
    Command("up-by-one", "apply the next pending migration", a.Up, "up_by_one"),
    Command("up-to", "apply pending migrations up to VERSION", a.UpTo, "up_to"),
    Command("down", "roll back the most recently applied migration", a.Down, "down"),
    Command(
        "down-to", "roll back, newest application first, every migration applied after VERSION", a.DownTo, "down_to"
    ),
    Command("redo", "roll back the most recently applied migration and apply it again", a.Down, "redo"),
    Command("reset", "roll back every applied migration, highest version first", a.Down, "reset"),
    Command(
        "migrate-to",
        "move the database to exactly VERSION: up-to when behind, down-to when ahead, nothing when equal",
        a.MigrateTo,
        "migrate_to",
    ),
    Command("status", "applied and pending migrations", a.Json, "status"),
    Command("history", "the recorded runs, newest first", a.Json, "history"),
    Command("version", "the current version (the most recently applied)", a.Arguments, "version"),
    Command("plan", "pending migrations and their statements; changes nothing", a.Plan, "plan"),
    Command("lint", "squawk's findings on the pending files, by file, statement and line", a.Lint, "lint_command"),
    Command(
        "rehearse",
        "apply the pending migrations to a throwaway copy of the schema on a scratch server: failures,"
        " locks, Down sections, drift and rows that would fail them; the target is only read",
        a.Rehearse,
        "rehearse",
    ),
    Command(
        "drift",
        "the live schema against what its applied migrations build on a scratch server, object by object;"
        " the target is only read",
        a.Rehearsing,
        "drift",
    ),
    Command("create", "write a new migration file", a.Create, "create", "file_commands"),
    Command("fix", "renumber timestamped migrations sequentially", a.Arguments, "fix", "file_commands"),
    Command(
        "validate",
        "parse every file both ways; with a database, also find edited applied files",
        a.Arguments,
        "validate",
        "file_commands",
    ),
    Command(
        "show", "the statements a file yields and whether it runs in a transaction", a.Show, "show", "file_commands"
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}
