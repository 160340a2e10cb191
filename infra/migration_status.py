"""What the database has applied, read from ``_migrations`` where Pulumi runs.

``MigrationStatus`` is a dynamic resource that reads the table after the job deployed, on
every ``pulumi up`` and refresh, and reports the applied and the still pending versions: the
outputs always describe the database as it is after the update, even when nothing else
changed or the migrations ran out of band. When the update changes what the migrator runs
(its deployment, ``infra/jobspec.py``), it first waits for the migrator's verdict on it
(``infra/verdict.py``). ``pending_migrations`` plans what the db-migrator task will do with
the database while the program runs (read-only, short timeout), so ``pulumi preview`` lists
what the next ``up`` will apply, and refuses an image whose migrator would refuse. An
unreachable database is a warning within seconds, never a crash and never a hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from infra.deadlines import MIGRATOR_ATTEMPTS, Deadlines
from infra.verdict import (
    READ_TIMEOUT_SECONDS,
    Patience,
    Verdict,
    describe,
    last_run,
    summary,
    unreadable,
    wait_for_verdict,
)
from migrator import (
    DEFAULT_TABLE,
    Ahead,
    Direction,
    Migration,
    Migrator,
    MigratorError,
    Outcome,
    Store,
    TableName,
    ahead_text,
    collect,
    connect,
    error_message,
    lint_if_installed,
    parse_file,
    transaction_note,
)

_STATUS_ID = "migration-status"
_WAITS = ("attempts", "first_run_seconds", "retry_seconds", "wait_seconds")
_INPUTS = ("database_url", "table", "versions", "migrations_hash", "migrator_image", "deployment", *_WAITS)


class MigratorWouldRefuse(pulumi.RunError):
    """The db-migrator task of this image would refuse the database: the preview refuses first."""


NOTHING_DEPLOYED = "Nothing is deployed until the database or migrations/ is fixed"


def would_refuse(reason: str) -> MigratorWouldRefuse:
    """The refusal, in the migrator's words (``reason``), that stops the program before any change."""
    return MigratorWouldRefuse(f"the db-migrator task of this image would refuse to run: {reason}. {NOTHING_DEPLOYED}")


@dataclass(frozen=True)
class Reading:
    applied: list[int]
    pending: list[Migration]
    error: str | None  # why the database could not be read, password removed
    refusal: str | None = None  # why the db-migrator task would refuse to run, in the migrator's words
    ahead: list[int] = field(default_factory=list)  # applied versions newer than every file


def applied_versions(database_url: str, table: str = DEFAULT_TABLE) -> tuple[list[int], str | None]:
    """The applied versions, in a read-only session; ([], why) when the database cannot be read."""
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            # goose's rule (the newest row of a version decides) lives in the migrator's Store.
            applied = Store(conn, TableName.parse(table)).applied()
    except Exception as exc:  # any driver failure must stay a warning, and stay redacted
        return [], unreadable(exc, database_url)
    return sorted(applied), None


def read_database(
    database_url: str, migrations: list[Migration], table: str = DEFAULT_TABLE, migrate_to: int | None = None
) -> Reading:
    """What the db-migrator task (``migrate-to migrate_to``) would do with ``migrations`` going
    forward, planned as it plans (every file it would run parsed), and why it would refuse."""
    refusal = None
    try:
        with connect(database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as conn:
            # ENVSUB lines expand from the Pulumi program's environment: the library reads none itself.
            migrator = Migrator(conn, migrations, TableName.parse(table), env=os.environ)
            status = migrator.status()
            try:
                if migrate_to is None or migrate_to > status.highest:  # else schema_target.py checks it
                    migrator.plan_up(target=migrate_to, status=status)
            except MigratorError as exc:
                refusal = error_message(exc)
    except Exception as exc:
        return Reading([], [], unreadable(exc, database_url))
    applied = sorted(s.migration.version for s in status.migrations if s.applied) + status.unknown_applied
    return Reading(sorted(applied), status.pending, None, refusal, status.ahead)


class MigrationStatusProvider(ResourceProvider):
    """Inputs: database_url (secret), table, versions (those in migrations/), migrations_hash,
    migrator_image, deployment (the migrator's, infra/jobspec.py) and the verdict's waits in
    seconds (attempts, first_run_seconds, retry_seconds, wait_seconds). Outputs add ``applied``,
    ``latest`` (0 when none), ``pending`` (versions in migrations/ not applied), ``last_run``
    (the run that decided, else the newest) and ``error`` (None when read)."""

    def _outputs(self, props: dict[str, Any], verdict: Verdict | None = None) -> dict[str, Any]:
        url, table = str(props["database_url"]), str(props.get("table") or DEFAULT_TABLE)
        applied, error = applied_versions(url, table)
        done = set(applied)
        last = verdict.run if verdict and verdict.run else last_run(url, table)
        if verdict and verdict.unreadable:
            error = (
                f"{verdict.unreadable}; the migrator's verdict on this deployment was not read, and `pulumi up` did"
                " not wait for it: Nomad's deployment decides (`nomad job status api`)"
            )
        return {
            **props,
            "applied": applied,
            "latest": max(applied, default=0),
            "pending": [] if error else [v for v in sorted(props.get("versions") or []) if v not in done],
            "error": error,
            "last_run": summary(last) if last else None,
        }

    def _verdict(self, props: dict[str, Any]) -> Verdict | None:
        """The migrator's verdict on the deployment; raises when it failed."""
        deployment = props.get("deployment")
        if not deployment or not props.get("wait_seconds"):
            return None
        patience = Patience(
            int(props["attempts"]),
            float(props["first_run_seconds"]),
            float(props["retry_seconds"]),
            float(props["wait_seconds"]),
        )
        table = TableName.parse(str(props.get("table") or DEFAULT_TABLE))
        image = str(props.get("migrator_image") or "?")
        return wait_for_verdict(str(props["database_url"]), table, str(deployment), image, patience)

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A job that exists already may have run this deployment before the status did.
        return CreateResult(_STATUS_ID, self._outputs(props, self._verdict(props)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, self._outputs(props))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the inputs: the database is re-read by the refresh every `up` starts with
        # (Pulumi.yaml's options.refresh), so an unchanged stack previews no changes.
        changed = [key for key in _INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed))  # never a replacement: this resource only reads

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Nomad runs the migrator again only when what it runs changes: wait only then.
        redeployed = olds.get("deployment") != news.get("deployment")
        return UpdateResult(self._outputs(news, self._verdict(news) if redeployed else None))


class MigrationStatus(pulumi.dynamic.Resource):
    """What the database has applied after this update. When the update changes what the
    migrator runs (``deployment``), it first waits (within ``deadlines``) for the migrator's
    verdict on that deployment and fails with the migrator's message if it failed. It does not
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
        deployment: pulumi.Input[str],
        deadlines: Deadlines,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "database_url": database_url,
            "table": DEFAULT_TABLE,
            "versions": versions,
            "migrations_hash": migrations_hash,
            "migrator_image": migrator_image,
            "deployment": deployment,
            "attempts": MIGRATOR_ATTEMPTS,
            "first_run_seconds": deadlines.first_run,
            "retry_seconds": deadlines.retry,
            "wait_seconds": deadlines.pulumi_timeout,
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
    try:
        files = [(m, parse_file(m.path, Direction.UP, os.environ)) for m in pending if not m.go]
        findings = lint_if_installed(files, directory)
    except MigratorError as exc:
        return [f"migration lint: {exc}"]
    if findings is None:
        return ["migration lint: squawk is not installed here, pending migrations were not linted"]
    return [f"migration lint: {finding}" for finding in findings]


def _how_it_runs(migration: Migration) -> str:
    """What the pending line adds for a file that ends its own transaction; a file that does not
    parse gets nothing here (lint_warnings reports why). A pending Go migration never gets here:
    the migrator would refuse to run it, and so does preview (read_database)."""
    try:
        said = transaction_note(parse_file(migration.path, Direction.UP, os.environ))
    except MigratorError:
        return ""
    return f" ({said})" if said else ""


def pending_migrations(
    database_url: pulumi.Output[str], root: Path, migrate_to: int | None = None
) -> pulumi.Output[list[int]]:
    """Versions the next deployment will apply (up to ``migrate_to``), logged one line per
    file, and the migrator's last run; [] if the database cannot be read. Raises
    MigratorWouldRefuse when the db-migrator task would refuse to run."""
    migrations = collect(root / "migrations")

    def report(url: str) -> list[int]:
        reading = read_database(url, migrations, migrate_to=migrate_to)
        if reading.error is not None:
            pulumi.log.warn(f"migration status: cannot read the database from here: {reading.error}")
            return []
        if (last := last_run(url, DEFAULT_TABLE)) is not None:
            (pulumi.log.info if last.outcome == Outcome.SUCCEEDED else pulumi.log.warn)(describe(last))
        if reading.refusal is not None:
            raise would_refuse(reading.refusal)
        if reading.ahead:
            newest = max((m.version for m in migrations), default=0)
            pulumi.log.warn(f"migration status: {ahead_text(reading.ahead, newest, Ahead.NEWER_IMAGE)}")
        pending = [m for m in reading.pending if migrate_to is None or m.version <= migrate_to]
        for migration in pending:
            pulumi.log.info(f"pending migration: {migration.filename}{_how_it_runs(migration)}")
        for warning in lint_warnings(pending, root / "migrations"):
            pulumi.log.warn(warning)
        return [m.version for m in pending]

    return database_url.apply(report)
