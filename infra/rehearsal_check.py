"""The rehearsal and the drift check, run while the program runs and before it declares anything.

With a scratch server (the stack's secret ``scratchServerUrl``), every ``pulumi preview`` and
``pulumi up`` replays the migrations the database has applied on a throwaway database there
(migrator/rehearsal.py), names each object the live schema has otherwise (drift: a warning, or
an error with ``failOnDrift``), and applies the pending files after them as the db-migrator
task would. A pending file that fails stops the program with the migrator's words (file,
statement, line, PostgreSQL's message).

It runs synchronously, before the image and the job are declared: a refusal raised in an
Output's ``apply`` comes after their registration, when `pulumi up` may already be building
and pushing the image. So both URLs are read as plain strings from the stack's config, used
only in this process, and every message that leaves it is redacted. The target is only read;
a database or scratch server that cannot be reached from here is a warning that says why,
as for the migration status (infra/migration_status.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from infra.migration_status import NOTHING_DEPLOYED, MigratorWouldRefuse, would_refuse
from infra.verdict import READ_TIMEOUT_SECONDS, unreadable
from migrator import (
    DEFAULT_TABLE,
    DriftCheck,
    InputError,
    Migration,
    Rehearsal,
    Safety,
    TableName,
    connect,
    error_message,
    redact,
    rehearsal_lines,
    rehearse,
)

SCRATCH_KEY = "api-migrations:scratchServerUrl"


class RehearsalFailed(MigratorWouldRefuse):
    """A pending migration failed on the throwaway database: the deployment would fail too."""


class DriftRefused(pulumi.RunError):
    """The live schema differs from what its applied migrations build, and the stack's
    ``failOnDrift`` makes that an error."""


@dataclass(frozen=True)
class RehearsalArgs:
    """What the rehearsal needs from the stack. The URLs are plain: never put them in a resource."""

    # Left out of repr: a traceback or a test's failure message would print them.
    database_url: str | None = field(repr=False)  # None when the stack does not read the database from here
    scratch_url: str | None = field(repr=False)  # None without a scratch server
    fail_on_drift: bool
    exclude_schemas: list[str]  # left out of the drift comparison (a platform's own, like Supabase's)
    migrate_to: int | None
    safety: Safety  # the db-migrator task's statement_timeout, so a statement that would outlast it fails here too

    def redacted(self, text: str) -> str:
        for url in (self.database_url, self.scratch_url):
            text = redact(text, url or "")
        return text


def rehearse_before_deploying(args: RehearsalArgs, migrations: list[Migration]) -> None:
    """Log what the rehearsal and the drift check found; raise when a pending file fails
    (RehearsalFailed), the migrator would refuse to plan (MigratorWouldRefuse), or drift
    was found and the stack asks for an error (DriftRefused)."""
    if args.scratch_url is None:
        return _off(args, f"no scratch server ({SCRATCH_KEY} is not set)")
    if args.database_url is None:
        return _off(args, "api-migrations:reportMigrations is false, so the database is not read from here")
    try:
        with connect(args.database_url, read_only=True, timeout_seconds=READ_TIMEOUT_SECONDS) as target:
            found = rehearse(
                target,
                args.scratch_url,
                migrations,
                TableName.parse(DEFAULT_TABLE),
                safety=args.safety,
                up_to=args.migrate_to,
                exclude_schemas=args.exclude_schemas,
            )
    except InputError as exc:  # the migrator's refusal to plan, as the db-migrator task refuses
        raise would_refuse(args.redacted(error_message(exc))) from None
    except Exception as exc:  # any driver failure stays a warning, and redacted
        pulumi.log.warn(f"rehearsal: not run: {args.redacted(unreadable(exc, args.database_url))}")
        return
    _report_drift(found.base, args)
    _report_files(found, args)


def _off(args: RehearsalArgs, why: str) -> None:
    """The one line that says the rehearsal is off, and why."""
    # A stack that asked for drift to stop it must not read this as a passing check.
    if args.fail_on_drift:
        pulumi.log.warn(f"rehearsal: off: {why}: api-migrations:failOnDrift has no drift check to act on")
    else:
        pulumi.log.info(f"rehearsal: off: {why}, so pending migrations are not rehearsed and drift is not checked")


def _report_drift(found: DriftCheck, args: RehearsalArgs) -> None:
    where = f"the scratch server {found.server}"
    if found.drift is None:
        limitation = f". Rehearsal limitation: {found.replay.limitation}" if found.replay.limitation else ""
        pulumi.log.warn(
            f"drift: not checked: the applied migrations did not replay on {where}:"
            f" {args.redacted(f'{found.replay.message}{limitation}')}"
        )
        return
    schemas = ", ".join(found.drift.schemas) or "none"
    if not found.drift.found:
        pulumi.log.info(f"drift: none (schemas {schemas}, replayed on {where})")
        return
    lines = found.drift.lines()
    if args.fail_on_drift:
        raise DriftRefused(
            f"drift: {len(lines)} object(s) differ from what the applied migrations build (schemas {schemas}):"
            f" {'; '.join(lines)}. api-migrations:failOnDrift is true. {NOTHING_DEPLOYED}"
        )
    for line in lines:
        pulumi.log.warn(f"drift: {line}")


def _report_files(found: Rehearsal, args: RehearsalArgs) -> None:
    for rehearsed in found.files:
        for line in rehearsal_lines(rehearsed):
            pulumi.log.info(f"rehearsal: {args.redacted(line)}")
    # Only what the pending files would do refuses: a replay that fails on the scratch server
    # (a table made by hand that a migration relied on) would otherwise refuse every deployment.
    if found.pending_failures:
        # Where the scratch server, not the file, may be the cause, the error says so and how to fix it.
        limitations = [f" Rehearsal limitation: {f.limitation}." for f in found.files if f.limitation]
        raise RehearsalFailed(
            f"the rehearsal on the scratch server {found.base.server} failed:"
            f" {args.redacted('; '.join(found.pending_failures))}.{''.join(limitations)} {NOTHING_DEPLOYED}"
        )
    if not found.base.replay.complete and found.not_run:
        names = ", ".join(m.filename for m in found.not_run)
        pulumi.log.warn(f"rehearsal: not run: {names} were not rehearsed, since the applied migrations did not replay")
    elif found.files:
        pulumi.log.info(
            f"rehearsal: passed: {len(found.files)} pending migration(s) applied on a throwaway database of"
            f" the scratch server {found.base.server}, dropped afterwards ({found.seconds:.2f}s)"
        )
