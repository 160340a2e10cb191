"""What the database has applied, read from ``_migrations`` where Pulumi runs.

``MigrationStatus`` is a dynamic resource that reads the table after the job deployed
and reports the applied versions; ``pending_migrations`` compares ``migrations/`` with
the database while the program runs (read-only, short timeout), so ``pulumi preview``
lists what the next ``up`` will apply. An unreachable database is a warning, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from migrator.dsn import connect, redact
from migrator.errors import MigratorError
from migrator.lint import find_config, lint, squawk_binary
from migrator.parser import Direction, parse_file
from migrator.runner import Runner
from migrator.source import Migration, collect
from migrator.store import DEFAULT_TABLE, TableName

READ_TIMEOUT_SECONDS = 5
_STATUS_ID = "migration-status"


@dataclass(frozen=True)
class Reading:
    applied: list[int]
    pending: list[Migration]
    error: str | None  # why the database could not be read, password removed
    refusal: str | None = None  # why the next up would refuse to run: edited applied files


def read_database(database_url: str, migrations: list[Migration], table: str = DEFAULT_TABLE) -> Reading:
    refusal = None
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            runner = Runner(conn, migrations, TableName.parse(table))
            status = runner.status()
            try:
                runner.refuse_drift(status)
            except MigratorError as exc:
                refusal = str(exc)
    except MigratorError as exc:
        return Reading([], [], redact(str(exc), database_url))
    except Exception as exc:  # any driver failure must stay a warning, and stay redacted
        return Reading([], [], redact(f"{type(exc).__name__}: {exc}", database_url))
    applied = sorted(s.migration.version for s in status.migrations if s.applied) + status.unknown_applied
    return Reading(sorted(applied), status.pending, None, refusal)


class MigrationStatusProvider(ResourceProvider):
    """Inputs: database_url (secret), table, migrations_hash, job_id. Outputs add
    ``applied`` (versions), ``latest`` (0 when none) and ``error`` (None when read)."""

    def _outputs(self, props: dict[str, Any]) -> dict[str, Any]:
        reading = read_database(str(props["database_url"]), [], str(props.get("table") or DEFAULT_TABLE))
        return {
            **props,
            "applied": reading.applied,
            "latest": max(reading.applied, default=0),
            "error": reading.error,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(_STATUS_ID, self._outputs(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, self._outputs(props))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("database_url", "table", "migrations_hash", "job_id") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._outputs(news))


class MigrationStatus(pulumi.dynamic.Resource):
    applied: pulumi.Output[list[int]]
    latest: pulumi.Output[int]
    error: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        database_url: pulumi.Input[str],
        migrations_hash: pulumi.Input[str],
        job_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "database_url": database_url,
            "table": DEFAULT_TABLE,
            "migrations_hash": migrations_hash,
            "job_id": job_id,
            "applied": None,
            "latest": None,
            "error": None,
        }
        secret = pulumi.ResourceOptions(additional_secret_outputs=["database_url"])
        super().__init__(MigrationStatusProvider(), name, props, pulumi.ResourceOptions.merge(secret, opts))


def lint_warnings(pending: list[Migration], directory: Path) -> list[str]:
    """squawk's findings on the files the next ``up`` applies, one line each."""
    if not pending:
        return []
    if squawk_binary() is None:
        return ["migration lint: squawk is not installed here, pending migrations were not linted"]
    try:
        files = [(m, parse_file(m.path, Direction.UP)) for m in pending]
        return [f"migration lint: {finding}" for finding in lint(files, find_config(directory))]
    except MigratorError as exc:
        return [f"migration lint: {exc}"]


def pending_migrations(database_url: pulumi.Output[str], root: Path) -> pulumi.Output[list[int]]:
    """Versions the next ``up`` will apply, logged one line per file; [] if unreadable."""
    migrations = collect(root / "migrations")

    def report(url: str) -> list[int]:
        reading = read_database(url, migrations)
        if reading.error is not None:
            pulumi.log.warn(f"migration status: cannot read the database from here: {reading.error}")
            return []
        if reading.refusal is not None:
            pulumi.log.warn(f"the migrator will refuse to run: {reading.refusal}")
        for migration in reading.pending:
            pulumi.log.info(f"pending migration: {migration.filename}")
        for warning in lint_warnings(reading.pending, root / "migrations"):
            pulumi.log.warn(warning)
        return [m.version for m in reading.pending]

    return database_url.apply(report)
