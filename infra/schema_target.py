"""The schema version a stack declares (``migrateTo``), checked while the program runs.

So that `pulumi preview` says what a deployment will do to the database before it does it:
a version the image does not carry is refused; going below the database's version is
refused unless the stack says ``allowDown``, and then every Down statement that will run is
listed, file by file, with squawk's findings; a Down section with nothing in it fails the
preview, naming the file, since rolling it back would only forget the version.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pulumi

from infra.migration_status import READ_TIMEOUT_SECONDS
from migrator.api import Migrator
from migrator.dsn import connect
from migrator.errors import MigratorError
from migrator.lint import find_config, lint, squawk_binary
from migrator.operator_text import error_message
from migrator.planning import Step
from migrator.source import Migration
from migrator.store import DEFAULT_TABLE, TableName


class SchemaTargetError(pulumi.RunError):
    """migrateTo cannot be reached the way the stack asks."""


def check_known(migrate_to: int | None, migrations: list[Migration]) -> None:
    """The image must carry the files of the version it is asked to reach."""
    if migrate_to not in (None, 0) and migrate_to not in {m.version for m in migrations}:
        raise SchemaTargetError(
            f"api-migrations:migrateTo {migrate_to} is not a version of migrations/ (the image's files);"
            " the image can only move the database to one of its own versions"
        )


def rollback_steps(conn: psycopg.Connection, migrations: list[Migration], migrate_to: int) -> list[Step] | None:
    """The Down steps reaching ``migrate_to``, in goose's order; None when the database is
    not above it. Raises MigratorError as the migrator would (edited file, missing file)."""
    migrator = Migrator(conn, migrations, TableName.parse(DEFAULT_TABLE))
    status = migrator.status(tolerate_unreadable_ledger=True)
    if status.highest <= migrate_to:
        return None
    return migrator.plan_down(target=migrate_to, status=status)


def announce_rollback(steps: list[Step], migrate_to: int, allow_down: bool, directory: Path) -> None:
    """Refuse, or list every Down statement that will run; an empty Down section refuses."""
    names = ", ".join(step.migration.filename for step in steps)
    if not allow_down:
        raise SchemaTargetError(
            f"api-migrations:migrateTo {migrate_to} is below the database's version: the deployment would roll"
            f" back {names}. Set `pulumi config set allowDown true` to let it, after reading what preview lists"
        )
    empty = [step.migration.filename for step in steps if not step.parsed.statements]
    if empty:
        raise SchemaTargetError(
            f"rolling back to {migrate_to} needs the Down section of {', '.join(empty)}, which has no statement:"
            " rolling it back would only forget the version. Write its Down section, or choose a later migrateTo"
        )
    for step in steps:
        for number, statement in enumerate(step.parsed.statements, start=1):
            pulumi.log.warn(f"rollback: {step.migration.filename} statement {number} (line {statement.line}):"
                            f" {statement.sql}")  # fmt: skip
    if squawk_binary() is not None:
        for finding in lint([(s.migration, s.parsed) for s in steps], find_config(directory)):
            pulumi.log.warn(f"rollback lint: {finding}")


def check_schema_target(
    database_url: pulumi.Output[str] | None,
    root: Path,
    migrations: list[Migration],
    migrate_to: int | None,
    allow_down: bool,
) -> pulumi.Output[None] | None:
    """All of the above; the database is read only when given (the stack's reportMigrations),
    and one that cannot be read from here is a warning (pending_migrations says why)."""
    check_known(migrate_to, migrations)
    if migrate_to is None or database_url is None:
        return None
    target = migrate_to

    def check(url: str) -> None:
        try:
            conn = connect(url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS)
        except MigratorError:
            pulumi.log.warn(f"migrateTo {target}: the database cannot be read from here; rollback not checked")
            return
        with conn:
            try:
                steps = rollback_steps(conn, migrations, target)
            except MigratorError as exc:
                raise SchemaTargetError(
                    f"migrateTo {target}: the migrator would refuse to roll back: {error_message(exc)}"
                ) from None
        if steps is not None:
            announce_rollback(steps, target, allow_down, root / "migrations")

    return database_url.apply(check)
