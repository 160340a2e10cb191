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
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from infra.verdict import describe, last_run, summary, wait_for_verdict
from migrator.api import Migrator
from migrator.dsn import connect, redact
from migrator.errors import MigratorError
from migrator.history import Run
from migrator.lint import find_config, lint, squawk_binary
from migrator.operator_text import error_message
from migrator.own_transaction import note
from migrator.parser import Direction, parse_file
from migrator.planning import refuse_drift
from migrator.source import Migration, collect
from migrator.store import DEFAULT_TABLE, Store, TableName

# Every read of the database from where Pulumi runs (schema_target.py too): unreachable is a
# warning within seconds, never a hang.
READ_TIMEOUT_SECONDS = 5
_STATUS_ID = "migration-status"
_INPUTS = ("database_url", "table", "versions", "migrations_hash", "migrator_image", "job_fingerprint", "wait_seconds")


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
            # goose's rule (the newest row of a version decides) lives in the migrator's Store.
            applied = Store(conn, TableName.parse(table)).applied()
    except Exception as exc:  # any driver failure must stay a warning, and stay redacted
        return [], _unreadable(exc, database_url)
    return sorted(applied), None


def read_database(database_url: str, migrations: list[Migration], table: str = DEFAULT_TABLE) -> Reading:
    """What the next ``up`` would do with ``migrations``, and whether it would refuse."""
    refusal = None
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            status = Migrator(conn, migrations, TableName.parse(table)).status()
            try:
                refuse_drift(status)
            except MigratorError as exc:
                refusal = error_message(exc)
    except Exception as exc:
        return Reading([], [], _unreadable(exc, database_url))
    applied = sorted(s.migration.version for s in status.migrations if s.applied) + status.unknown_applied
    return Reading(sorted(applied), status.pending, None, refusal)


class MigrationStatusProvider(ResourceProvider):
    """Inputs: database_url (secret), table, versions (those in migrations/), migrations_hash,
    job_id. Outputs add ``applied``, ``latest`` (0 when none), ``pending`` (versions in
    migrations/ not applied) and ``error`` (None when read)."""

    def _outputs(self, props: dict[str, Any], verdict: Run | None = None) -> dict[str, Any]:
        url, table = str(props["database_url"]), str(props.get("table") or DEFAULT_TABLE)
        applied, error = applied_versions(url, table)
        done = set(applied)
        last = verdict or last_run(url, table)
        return {
            **props,
            "applied": applied,
            "latest": max(applied, default=0),
            "pending": [] if error else [v for v in sorted(props.get("versions") or []) if v not in done],
            "error": error,
            "last_run": summary(last) if last else None,
        }

    def _verdict(self, props: dict[str, Any], *, new_runs: bool) -> Run | None:
        """The migrator's verdict on the job version this update deploys; raises when it failed."""
        image, seconds = props.get("migrator_image"), props.get("wait_seconds") or 0
        if not image or not seconds:
            return None
        table = TableName.parse(str(props.get("table") or DEFAULT_TABLE))
        return wait_for_verdict(str(props["database_url"]), table, str(image), float(seconds), new_runs=new_runs)

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A job that exists already may have run this image before the status did.
        return CreateResult(_STATUS_ID, self._outputs(props, self._verdict(props, new_runs=False)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, self._outputs(props))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the inputs: the database is re-read by the refresh every `up` starts with
        # (Pulumi.yaml's options.refresh), so an unchanged stack previews no changes.
        changed = [key for key in _INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed))  # never a replacement: this resource only reads

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Nomad runs the migrator only when the job changes: wait only then.
        redeployed = any(olds.get(key) != news.get(key) for key in ("migrator_image", "job_fingerprint"))
        return UpdateResult(self._outputs(news, self._verdict(news, new_runs=True) if redeployed else None))


class MigrationStatus(pulumi.dynamic.Resource):
    """What the database has applied after this update. When the update changes the job, it
    first waits (at most ``wait_seconds``, the job's own deadline) for the migrator's run of
    ``migrator_image`` and fails with the migrator's message if that run failed. It does not
    depend on the job: a failed deployment must not keep it from reporting why."""

    applied: pulumi.Output[list[int]]
    latest: pulumi.Output[int]
    pending: pulumi.Output[list[int]]
    error: pulumi.Output[str | None]
    last_run: pulumi.Output[dict[str, Any] | None]

    def __init__(
        self,
        name: str,
        *,
        database_url: pulumi.Input[str],
        versions: list[int],
        migrations_hash: pulumi.Input[str],
        migrator_image: pulumi.Input[str],
        job_fingerprint: pulumi.Input[str],
        wait_seconds: int,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "database_url": database_url,
            "table": DEFAULT_TABLE,
            "versions": versions,
            "migrations_hash": migrations_hash,
            "migrator_image": migrator_image,
            "job_fingerprint": job_fingerprint,
            "wait_seconds": wait_seconds,
            "applied": None,
            "latest": None,
            "pending": None,
            "error": None,
            "last_run": None,
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
        files = [(m, parse_file(m.path, Direction.UP)) for m in pending if not m.go]
        return [f"migration lint: {finding}" for finding in lint(files, find_config(directory))]
    except MigratorError as exc:
        return [f"migration lint: {exc}"]


def _how_it_runs(migration: Migration) -> str:
    """What the pending line adds for a file that ends its own transaction; a file that does not
    parse gets nothing here (lint_warnings reports why)."""
    if migration.go:
        return " (a Go migration: the migrator will refuse to run it)"
    try:
        said = note(parse_file(migration.path, Direction.UP))
    except MigratorError:
        return ""
    return f" ({said})" if said else ""


def pending_migrations(
    database_url: pulumi.Output[str], root: Path, migrate_to: int | None = None
) -> pulumi.Output[list[int]]:
    """Versions the next deployment will apply (up to ``migrate_to``), logged one line per
    file, and the migrator's last run; [] if the database cannot be read."""
    migrations = collect(root / "migrations")

    def report(url: str) -> list[int]:
        reading = read_database(url, migrations)
        if reading.error is not None:
            pulumi.log.warn(f"migration status: cannot read the database from here: {reading.error}")
            return []
        if (last := last_run(url, DEFAULT_TABLE)) is not None:
            (pulumi.log.warn if last.outcome in ("failed", "interrupted") else pulumi.log.info)(describe(last))
        if reading.refusal is not None:
            pulumi.log.warn(f"the migrator will refuse to run: {reading.refusal}")
        pending = [m for m in reading.pending if migrate_to is None or m.version <= migrate_to]
        for migration in pending:
            pulumi.log.info(f"pending migration: {migration.filename}{_how_it_runs(migration)}")
        for warning in lint_warnings(pending, root / "migrations"):
            pulumi.log.warn(warning)
        return [m.version for m in pending]

    return database_url.apply(report)
