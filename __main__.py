"""Pulumi program: the migrator image, the Nomad job that runs it, and what it applied."""

from pathlib import Path

import pulumi

from infra import config as stack_config
from infra.api_job import ApiJob, confirm_deployed
from infra.migration_status import MigrationStatus, pending_migrations
from infra.migrator_image import MigratorImage
from infra.registry import Registry
from migrator.source import collect

ROOT = Path(__file__).resolve().parent


def warn_if_unread(error: str | None) -> None:
    if error:
        pulumi.log.warn(f"migration status: {error}")


config = stack_config.load()
registry = Registry("registry", config)
image = MigratorImage("db-migrator", ROOT, registry)
job = ApiJob(
    "api", config, migrator_image=image.digest, migrations_hash=image.content_hash, pull_access=registry.pull_access
)

pulumi.export("migrationsHash", image.content_hash)
pulumi.export("migratorImage", image.digest)
pulumi.export("registryUrl", registry.url)
pulumi.export("apiJobId", confirm_deployed(job, image.digest))

if config.report_migrations:
    # Logged while the program runs, so `pulumi preview` lists what the next `up` applies.
    pending_migrations(config.database_url, ROOT)
    status = MigrationStatus(
        "migration-status",
        database_url=config.database_url,
        versions=[m.version for m in collect(ROOT / "migrations")],
        migrations_hash=image.content_hash,
        job_id=job.job_id,
        opts=pulumi.ResourceOptions(depends_on=[job]),
    )
    status.error.apply(warn_if_unread)
    pulumi.export("appliedMigrations", pulumi.Output.unsecret(status.applied))
    pulumi.export("latestMigration", pulumi.Output.unsecret(status.latest))
    pulumi.export("pendingMigrations", pulumi.Output.unsecret(status.pending))
