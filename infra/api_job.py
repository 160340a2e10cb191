"""The Nomad job ``api``: the db-migrator prestart task, then the API task ``start``.

The job's settings (and a digest of each part Nomad acts on, infra/jobspec.py) go to the
jobspec's variables; the group's meta carries the digests, so the job Nomad runs, read back
by the refresh every ``pulumi up`` starts with, is compared with what this stack submits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_nomad as nomad

from infra import jobspec
from infra.deadlines import (
    DB_LOCK_TIMEOUT,
    LOCK_RETRIES,
    RESCHEDULE_ATTEMPTS,
    RESCHEDULE_DELAY_SECONDS,
    Deadlines,
    duration,
)
from infra.jobspec import DEPLOYMENT_VARIABLE, GROUP, JOB_ID, SETTINGS_VARIABLE
from infra.task_memory import FLOOR_MB
from infra.variable_version import VersionKey, keyed_version

JOBSPEC = Path(__file__).resolve().parent / "jobs" / "api.nomad.hcl"
# Without any policy, a task may read the Variables at nomad/jobs/<job>, .../<job>/<group> and
# .../<job>/<group>/<task>: the group's path is the one both tasks can read.
SECRETS_VARIABLE_PATH = f"nomad/jobs/{JOB_ID}/{GROUP}"
# The Variable's item that holds the database URL; apiSecrets may not reuse it.
DATABASE_ITEM = "database_url"
# Environment the jobspec sets itself from the database URL; apiEnv/apiSecrets may not reuse it.
DATABASE_ENV = ("POSTGRES_CONNECTION_STRING", "AUTH_DB_CONNECTION_STRING")


@dataclass(frozen=True)
class ApiJobArgs:
    """What the stack's config says about the job and the Variable its tasks read."""

    api_image: str
    api_count: int
    api_port: int
    api_args: list[str]
    api_env: dict[str, str]
    api_secrets: pulumi.Output[dict[str, str]]  # always secret
    api_distinct_hosts: bool
    canary: int
    node_pool: str
    datacenters: list[str]
    migration_timeout_seconds: int
    migrate_to: int | None  # None: the newest migration in the image
    allow_down: bool
    database_url: pulumi.Output[str]  # always secret

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.migration_timeout_seconds, self.api_count, self.canary)


def hcl_value(value: list[str] | dict[str, str] | bool) -> str:
    """A literal for a non-string jobspec variable.

    Nomad parses such values as HCL expressions evaluated without variables, so a ``${...}``
    or ``%{...}`` in them is escaped: it reaches the job as written, for Nomad's own runtime
    interpolation (``${NOMAD_PORT_api}``).
    """
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def job_variables(
    args: ApiJobArgs,
    migrator_image: pulumi.Input[str],
    migrations_hash: str,
    secrets_version: pulumi.Input[str],
    *,
    rollback_id: pulumi.Input[str] | None = None,
    migrator_memory: int = FLOOR_MB,
) -> dict[str, pulumi.Input[str]]:
    """Values for the jobspec's ``variable`` blocks, but the two digests (``with_digests``)."""
    waits = args.deadlines
    return {
        "api_image": args.api_image,
        "api_count": str(args.api_count),
        "api_port": str(args.api_port),
        "api_args": hcl_value(args.api_args),
        "api_env": hcl_value(args.api_env),
        "api_distinct_hosts": hcl_value(args.api_distinct_hosts),
        "canary": str(args.canary),
        "node_pool": args.node_pool,
        "datacenters": hcl_value(args.datacenters),
        "min_healthy_time": duration(waits.min_healthy_time),
        "healthy_deadline": duration(waits.healthy_deadline),
        "progress_deadline": duration(waits.progress_deadline),
        "reschedule_attempts": str(RESCHEDULE_ATTEMPTS),
        "reschedule_interval": duration(waits.reschedule_interval),
        "reschedule_delay": duration(RESCHEDULE_DELAY_SECONDS),
        "migrator_image": migrator_image,
        "migrations_hash": migrations_hash,
        "migrator_args": pulumi.Output.from_input(rollback_id).apply(
            lambda rollback: hcl_value(migrator_args(args, rollback))
        ),
        "migrator_statement_timeout": duration(waits.statement_timeout),
        "migrator_db_lock_timeout": DB_LOCK_TIMEOUT,
        "migrator_lock_retries": str(LOCK_RETRIES),
        "secrets_path": SECRETS_VARIABLE_PATH,
        "secrets_version": secrets_version,
        "migrator_memory": str(migrator_memory),
    }


def with_digests(variables: dict[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """``variables`` and the digests the jobspec records (infra/jobspec.py)."""
    text = JOBSPEC.read_text()
    given = pulumi.Output.all(**variables)
    deployment = given.apply(lambda values: jobspec.migrator_deployment(text, values))
    settings = pulumi.Output.all(given, deployment).apply(
        lambda found: jobspec.settings_digest(text, {**found[0], DEPLOYMENT_VARIABLE: found[1]})
    )
    return {**variables, DEPLOYMENT_VARIABLE: deployment, SETTINGS_VARIABLE: settings}


def migrator_args(args: ApiJobArgs, rollback_id: str | None = None) -> list[str]:
    """The db-migrator task's command: the stack's declared schema version, never further,
    within the run's budget; going down only when the stack allows it, once per rollback."""
    target = "latest" if args.migrate_to is None else str(args.migrate_to)
    waits = args.deadlines
    command = ["migrate-to", target, "--lock-timeout", duration(waits.lock_wait)]
    command += ["--run-timeout", duration(waits.run_timeout)]
    if args.allow_down:
        command += ["--allow-down", *(["--rollback-id", rollback_id] if rollback_id else [])]
    return command


def variable_items(database_url: str, api_secrets: dict[str, Any]) -> str:
    return json.dumps({DATABASE_ITEM: database_url, **api_secrets})


class ApiJob(pulumi.ComponentResource):
    """Writes the database URL and the API's secrets to a Nomad Variable and deploys the job,
    waiting for the deployment so that a failing migration fails ``pulumi up``."""

    job_id: pulumi.Output[str]
    deployed: pulumi.Output[dict[str, str] | None]  # the group's meta of the job Nomad runs
    migrator_image: pulumi.Output[str]
    deployment: pulumi.Output[str]  # the migrator's deployment key (MIGRATOR_DEPLOYMENT)
    settings_digest: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ApiJobArgs,
        *,
        migrator_image: pulumi.Input[str],
        migrations_hash: str,
        pull_access: Sequence[pulumi.Resource] = (),
        rollback_id: pulumi.Input[str] | None = None,
        migrator_memory: int = FLOOR_MB,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("api-migrations:index:ApiJob", name, None, opts)
        # Both inputs are secrets, so the JSON is one too.
        items = pulumi.Output.all(args.database_url, args.api_secrets).apply(lambda v: variable_items(*v))
        key = VersionKey(f"{name}-secrets-version-key", opts=pulumi.ResourceOptions(parent=self))
        # Keyed, so plain: it tells nothing about the secrets without the key (infra/variable_version.py).
        version = pulumi.Output.unsecret(pulumi.Output.all(key.key, items).apply(lambda v: keyed_version(*v)))
        # Write-only: the provider sends it to Nomad and keeps no copy in its state;
        # Pulumi keeps the input only encrypted, as a secret.
        secrets = nomad.Variable(
            f"{name}-secrets",
            path=SECRETS_VARIABLE_PATH,
            namespace="default",
            items_wo=items,
            # Written again exactly when the content changes.
            items_wo_version=version,
            # The running job reads it at every start: `pulumi destroy` leaves it in place.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        timeout = duration(args.deadlines.pulumi_timeout)
        variables = with_digests(
            job_variables(
                args,
                migrator_image,
                migrations_hash,
                version.apply(str),
                rollback_id=rollback_id,
                migrator_memory=migrator_memory,
            )
        )
        job = nomad.Job(
            name,
            jobspec=JOBSPEC.read_text(),
            hcl2=nomad.JobHcl2Args(vars=variables),
            detach=False,
            # After `nomad job stop api`, the refresh reads the job as dead: `pulumi up` runs it again.
            rerun_if_dead=True,
            purge_on_destroy=False,
            # The API outlives this stack: `pulumi destroy`, or `pulumi up --replace` of this
            # resource to submit it again, never stops it (`nomad job stop api` does).
            deregister_on_destroy=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                # The first allocation pulls from the registry: its read access must exist first.
                depends_on=[secrets, *pull_access],
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
                # The engine never even asks the provider (whose delete is a no-op without deregistration).
                retain_on_delete=True,
            ),
        )
        self.job_id = job.id
        self.migrator_image = pulumi.Output.from_input(migrator_image)
        self.deployment = pulumi.Output.from_input(variables[DEPLOYMENT_VARIABLE])
        self.settings_digest = pulumi.Output.from_input(variables[SETTINGS_VARIABLE])
        # What Nomad runs, as the provider last read it (refreshed before every update).
        self.deployed = job.task_groups.apply(deployed_meta)
        self.register_outputs({"jobId": self.job_id})


class DeploymentReverted(pulumi.RunError):
    """Nomad runs another version than the one this stack submitted."""


def deployed_meta(task_groups: Sequence[Any] | None) -> dict[str, str] | None:
    """The group's meta of the job Nomad runs (None: not read yet)."""
    for group in task_groups or []:
        name = group["name"] if isinstance(group, dict) else group.name
        meta = group["meta"] if isinstance(group, dict) else group.meta
        if name == GROUP:
            return {str(key): str(value) for key, value in (meta or {}).items()}
    return None


def reverted(deployed: dict[str, str] | None, image: str, settings: str) -> str | None:
    """What Nomad runs that this stack did not submit, or None. A job an older program
    deployed has no settings digest yet: its migrator image is compared alone."""
    if not deployed:
        return None
    if deployed.get("migrator_image") and deployed["migrator_image"] != image:
        return f"the db-migrator image {deployed['migrator_image']}, not {image}"
    if deployed.get(SETTINGS_VARIABLE) and deployed[SETTINGS_VARIABLE] != settings:
        return (
            "other settings than this stack's (apiImage, apiArgs, apiEnv, apiPort, migrateTo or allowDown:"
            f" settings digest {deployed[SETTINGS_VARIABLE][:12]}, not {settings[:12]})"
        )
    return None


def confirm_deployed(job: ApiJob) -> pulumi.Output[str]:
    """The job id, once Nomad is seen to run what this stack submits.

    After a failed deployment Nomad reverts the job, while Pulumi's state keeps the inputs it
    submitted (the provider cannot write the reverted variables back on refresh): the provider
    then sees no change and a later ``up`` would report success. The refresh before every
    update (``options.refresh`` in Pulumi.yaml) reads the job Nomad runs; if its group's meta
    is not this stack's, ``pulumi up`` fails saying so (``preview`` warns).
    """

    def check(args: list[Any]) -> str:
        job_id, deployed, image, settings = args
        found = reverted(deployed, image, settings)
        if found is not None:
            message = (
                f"Nomad job {job_id} runs {found}: its last deployment failed and Nomad reverted it, or the job"
                " was changed outside this stack (`nomad job history api` shows which). Fix the cause and run"
                " `pulumi up` with the change, or submit the same version again with"
                " `pulumi up --replace <URN of the nomad:index/job:Job>` (`pulumi stack --show-urns`)."
            )
            if pulumi.runtime.is_dry_run():
                pulumi.log.warn(message)
            else:
                raise DeploymentReverted(message)
        return str(job_id)

    return pulumi.Output.all(job.job_id, job.deployed, job.migrator_image, job.settings_digest).apply(check)
