"""The schema version a stack declares (``migrateTo``), checked while the program runs.

So that `pulumi preview` says what a deployment will do to the database before it does it:
a version the image does not carry is refused; going below the database's version is
refused unless the stack says ``allowDown``, and then every Down statement that will run is
listed, file by file, with squawk's findings; a Down section with nothing in it fails the
preview, naming the file, since rolling it back would only forget the version. A rollback
runs once (infra/rollback_request.py): when this stack's rollback completed before and the
database moved on since, preview says that nothing will be rolled back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pulumi
from psycopg import errors as pg_errors
from pulumi.output import contains_unknowns

from infra.verdict import READ_TIMEOUT_SECONDS
from migrator import (
    DEFAULT_TABLE,
    Ahead,
    History,
    InputError,
    Migration,
    Migrator,
    MigratorError,
    Run,
    Step,
    TableName,
    ahead_text,
    connect,
    error_message,
    lint_if_installed,
    refuse_unknown_target,
)


class SchemaTargetError(pulumi.RunError):
    """migrateTo cannot be reached the way the stack asks."""


def check_known(migrate_to: int | None, migrations: list[Migration]) -> None:
    """The image must carry the files of the version it is asked to reach: the migrator's
    own check (its ``migrate-to`` refuses the same versions), in the stack's words."""
    try:
        refuse_unknown_target(migrate_to, migrations)
    except InputError:
        raise SchemaTargetError(
            f"api-migrations:migrateTo {migrate_to} is not a version of migrations/ (the image's files);"
            " the image can only move the database to one of its own versions"
        ) from None


def rollback_steps(conn: psycopg.Connection, migrations: list[Migration], migrate_to: int) -> list[Step] | None:
    """The Down steps reaching ``migrate_to``, in goose's order; None when the database is
    not above it. Raises MigratorError as the migrator would (edited file, missing file)."""
    migrator = Migrator(conn, migrations, TableName.parse(DEFAULT_TABLE))
    status = migrator.status(tolerate_unreadable_ledger=True)
    if status.highest <= migrate_to:
        return None
    return migrator.plan_down(target=migrate_to, status=status)


def refuse_going_down(names: str, migrate_to: int, highest: int) -> None:
    raise SchemaTargetError(
        f"api-migrations:migrateTo {migrate_to} is below the database's version {highest}: going down to it rolls"
        f" back {names}, which the stack does not allow (the db-migrator task leaves the database as it is)."
        " Set `pulumi config set allowDown true` to let it, after reading what preview lists; or set migrateTo"
        f" to {highest} or latest"
    )


def announce_rollback(steps: list[Step], migrate_to: int, directory: Path) -> None:
    """List every Down statement that will run; an empty Down section refuses."""
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
    for finding in lint_if_installed([(s.migration, s.parsed) for s in steps], directory) or []:
        pulumi.log.warn(f"rollback lint: {finding}")


def completed_rollback(conn: psycopg.Connection, rollback_id: str) -> Run | None:
    """The run that completed the rollback, or None (also when this role may not read the runs)."""
    try:
        return History(conn, TableName.parse(DEFAULT_TABLE)).rollback_completed(rollback_id)
    except pg_errors.InsufficientPrivilege:
        pulumi.log.warn(
            f"rollback {rollback_id}: no privilege to read the run history here: whether it ran before is not"
            " known; the db-migrator task knows, and runs it only if it did not"
        )
        return None


def check_schema_target(
    database_url: pulumi.Output[str] | None,
    root: Path,
    migrations: list[Migration],
    migrate_to: int | None,
    allow_down: bool,
    *,
    rollback_id: pulumi.Input[str] | None = None,
) -> pulumi.Output[None] | None:
    """All of the above; the database is read only when given (the stack's reportMigrations),
    and one that cannot be read from here is a warning (pending_migrations says why).
    ``rollback_id`` is the stack's rollback, unknown in a preview that asks for a new one."""
    check_known(migrate_to, migrations)
    if migrate_to is None or database_url is None:
        return None
    target = migrate_to

    def check(found: list[Any]) -> None:
        url, rollback = found
        try:
            conn = connect(url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS)
        except MigratorError:
            pulumi.log.warn(f"migrateTo {target}: the database cannot be read from here; rollback not checked")
            return
        with conn:
            migrator = Migrator(conn, migrations, TableName.parse(DEFAULT_TABLE))
            status = migrator.status(tolerate_unreadable_ledger=True)
            if status.highest <= target:
                return
            above = sorted(v for v in status.applied_order if v > target)
            known = allow_down and rollback is not None and not contains_unknowns(rollback)
            if known and (done := completed_rollback(conn, str(rollback))) is not None:
                text = ahead_text(above, target, Ahead.ROLLBACK_DONE, str(rollback), done.finished_at)
                pulumi.log.warn(
                    f"migrateTo {target}: {text}. To roll back to {target} again, `pulumi up --replace` the"
                    " rollback request (`pulumi stack --show-urns`)"
                )
                return
            try:
                steps = migrator.plan_down(target=target, status=status)
            except MigratorError as exc:
                if not allow_down:
                    refuse_going_down(", ".join(f"version {v}" for v in reversed(above)), target, status.highest)
                raise SchemaTargetError(
                    f"migrateTo {target}: the migrator would refuse to roll back: {error_message(exc)}"
                ) from None
        if not allow_down:
            refuse_going_down(", ".join(step.migration.filename for step in steps), target, status.highest)
        announce_rollback(steps, target, root / "migrations")

    return pulumi.Output.all(database_url, rollback_id).apply(check, run_with_unknowns=True)
