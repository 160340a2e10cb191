"""Pulumi program: the migrator image, the Nomad job that runs it, and what it applied."""

from pathlib import Path

import pulumi

from infra import config as stack_config
from infra.api_job import ApiJob, confirm_deployed
from infra.migration_status import MigrationStatus, pending_migrations
from infra.migrator_image import MigratorImage, PromotedImage
from infra.registry import Registry
from infra.rehearsal_check import rehearse_before_deploying
from infra.rollback_request import RollbackRequest
from infra.schema_target import check_schema_target
from infra.task_memory import migrator_memory
from migrator import collect

ROOT = Path(__file__).resolve().parent


def warn_if_unread(error: str | None) -> None:
    if error:
        pulumi.log.warn(f"migration status: {error}")


config = stack_config.load()
migrations = collect(ROOT / "migrations")
# Before anything is declared: a pending file that fails on the scratch server stops even `up`
# before the image is built.
rehearse_before_deploying(config.rehearsal, migrations)
registry = Registry("registry", config.registry)
image = (
    PromotedImage("db-migrator", ROOT, config.promote_from, config.registry)
    if config.promote_from
    else MigratorImage("db-migrator", ROOT, registry)
)
# Only while the stack allows going down: a new id whenever migrateTo changes, so a rollback runs once.
rollback = RollbackRequest("rollback-request", config.job.migrate_to) if config.job.allow_down else None
rollback_id = rollback.id if rollback else None
job = ApiJob(
    "api",
    config.job,
    migrator_image=image.digest,
    migrations_hash=image.content_hash,
    pull_access=[*registry.pull_access, *image.pull_access],
    rollback_id=rollback_id,
    migrator_memory=migrator_memory([m.path for m in migrations]),
)

pulumi.export("migrationsHash", image.content_hash)
pulumi.export("migratorImage", image.digest)
pulumi.export("registryUrl", registry.url)
pulumi.export("apiJobId", confirm_deployed(job))

# While the program runs, so that `pulumi preview` refuses an unreachable migrateTo, or lists
# every Down statement a rollback will run.
check_schema_target(
    config.job.database_url if config.report_migrations else None,
    ROOT,
    migrations,
    config.job.migrate_to,
    config.job.allow_down,
    rollback_id=rollback_id,
)

if config.report_migrations:
    # Logged while the program runs, so `pulumi preview` lists what the next `up` applies.
    pending_migrations(config.job.database_url, ROOT, config.job.migrate_to)
    status = MigrationStatus(
        "migration-status",
        database_url=config.job.database_url,
        versions=[m.version for m in migrations],
        migrations_hash=image.content_hash,
        migrator_image=image.digest,
        deployment=job.deployment,
        # Beside the job, not after it: a failed deployment must not keep it from saying why.
        deadlines=config.job.deadlines,
    )
    status.error.apply(warn_if_unread)
    pulumi.export("appliedMigrations", pulumi.Output.unsecret(status.applied))
    pulumi.export("latestMigration", pulumi.Output.unsecret(status.latest))
    pulumi.export("pendingMigrations", pulumi.Output.unsecret(status.pending))
    pulumi.export("lastMigratorRun", pulumi.Output.unsecret(status.last_run))
