"""What the database has applied, read from ``_migrations`` where Pulumi runs.

``MigrationStatus`` is a dynamic resource that reads the table after the job deployed, on
every ``pulumi up`` and refresh, and reports the applied and the still pending versions: the
outputs always describe the database as it is after the update, even when nothing else
changed or the migrations ran out of band. ``pending_migrations`` compares ``migrations/``
with the database while the program runs (read-only, short timeout), so ``pulumi preview``
lists what the next ``up`` will apply. An unreachable database is a warning, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from psycopg import sql
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from migrator.dsn import connect, redact
from migrator.errors import MigratorError
from migrator.lint import find_config, lint, squawk_binary
from migrator.parser import Direction, parse_file
from migrator.runner import Runner
from migrator.source import Migration, collect
from migrator.store import DEFAULT_TABLE, TableName, table_exists

READ_TIMEOUT_SECONDS = 5
_STATUS_ID = "migration-status"
_INPUTS = ("database_url", "table", "versions", "migrations_hash", "job_id")
# goose's rule: the newest row of a version says whether it is applied (very old goose
# recorded a rollback as a second row with is_applied = false); 0 is goose's own marker row.
_APPLIED = sql.SQL(
    "SELECT version_id FROM ("
    " SELECT version_id, is_applied, row_number() OVER (PARTITION BY version_id ORDER BY id DESC) AS newest"
    " FROM {}) AS rows"
    " WHERE newest = 1 AND is_applied AND version_id <> 0 ORDER BY version_id"
)


@dataclass(frozen=True)
class Reading:
    applied: list[int]
    pending: list[Migration]
    error: str | None  # why the database could not be read, password removed
    refusal: str | None = None  # why the next up would refuse to run: edited applied files


def _unreadable(exc: Exception, database_url: str) -> str:
    if isinstance(exc, MigratorError):
        return redact(str(exc), database_url)
    return redact(f"{type(exc).__name__}: {exc}", database_url)


def applied_versions(database_url: str, table: str = DEFAULT_TABLE) -> tuple[list[int], str | None]:
    """The applied versions, in a read-only session; ([], why) when the database cannot be read."""
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            name = TableName.parse(table)
            if not table_exists(conn, name):
                return [], None
            rows = conn.execute(_APPLIED.format(name.identifier)).fetchall()
    except Exception as exc:  # any driver failure must stay a warning, and stay redacted
        return [], _unreadable(exc, database_url)
    return [int(row[0]) for row in rows], None


def read_database(database_url: str, migrations: list[Migration], table: str = DEFAULT_TABLE) -> Reading:
    """What the next ``up`` would do with ``migrations``, and whether it would refuse."""
    refusal = None
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            runner = Runner(conn, migrations, TableName.parse(table))
            status = runner.status()
            try:
                runner.refuse_drift(status)
            except MigratorError as exc:
                refusal = str(exc)
    except Exception as exc:
        return Reading([], [], _unreadable(exc, database_url))
    applied = sorted(s.migration.version for s in status.migrations if s.applied) + status.unknown_applied
    return Reading(sorted(applied), status.pending, None, refusal)


class MigrationStatusProvider(ResourceProvider):
    """Inputs: database_url (secret), table, versions (those in migrations/), migrations_hash,
    job_id. Outputs add ``applied``, ``latest`` (0 when none), ``pending`` (versions in
    migrations/ not applied) and ``error`` (None when read)."""

    def _outputs(self, props: dict[str, Any]) -> dict[str, Any]:
        applied, error = applied_versions(str(props["database_url"]), str(props.get("table") or DEFAULT_TABLE))
        done = set(applied)
        return {
            **props,
            "applied": applied,
            "latest": max(applied, default=0),
            "pending": [] if error else [v for v in sorted(props.get("versions") or []) if v not in done],
            "error": error,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(_STATUS_ID, self._outputs(props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, self._outputs(props))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the inputs: the database is re-read by the refresh every `up` starts with
        # (Pulumi.yaml's options.refresh), so an unchanged stack previews no changes.
        changed = [key for key in _INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._outputs(news))


class MigrationStatus(pulumi.dynamic.Resource):
    applied: pulumi.Output[list[int]]
    latest: pulumi.Output[int]
    pending: pulumi.Output[list[int]]
    error: pulumi.Output[str | None]

    def __init__(
        self,
        name: str,
        *,
        database_url: pulumi.Input[str],
        versions: list[int],
        migrations_hash: pulumi.Input[str],
        job_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "database_url": database_url,
            "table": DEFAULT_TABLE,
            "versions": versions,
            "migrations_hash": migrations_hash,
            "job_id": job_id,
            "applied": None,
            "latest": None,
            "pending": None,
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
