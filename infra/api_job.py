"""The Nomad job ``api``: the db-migrator prestart task, then the API task ``start``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_nomad as nomad

from infra.deadlines import DB_LOCK_TIMEOUT_SECONDS, LOCK_RETRIES, Deadlines, duration
from infra.variable_version import VersionKey, keyed_version

JOBSPEC = Path(__file__).resolve().parent / "jobs" / "api.nomad.hcl"
JOB_ID = "api"
GROUP = "api-service"
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
    args: ApiJobArgs, migrator_image: pulumi.Input[str], migrations_hash: str, secrets_version: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """Values for the jobspec's ``variable`` blocks."""
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
        "migrator_image": migrator_image,
        "migrations_hash": migrations_hash,
        "migrator_args": hcl_value(migrator_args(args)),
        "migrator_statement_timeout": duration(waits.statement_timeout),
        "migrator_db_lock_timeout": duration(DB_LOCK_TIMEOUT_SECONDS),
        "migrator_lock_retries": str(LOCK_RETRIES),
        "secrets_path": SECRETS_VARIABLE_PATH,
        "secrets_version": secrets_version,
    }


def migrator_args(args: ApiJobArgs) -> list[str]:
    """The db-migrator task's command: the stack's declared schema version, never further."""
    target = "latest" if args.migrate_to is None else str(args.migrate_to)
    allow_down = ["--allow-down"] if args.allow_down else []
    return ["migrate-to", target, "--lock-timeout", duration(args.deadlines.lock_wait), *allow_down]


def job_fingerprint(variables: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """Changes exactly when the job Nomad runs changes, and so the migrator runs again."""
    names = sorted(variables)
    return pulumi.Output.all(*(variables[name] for name in names)).apply(
        lambda values: hashlib.sha256(
            json.dumps([JOBSPEC.read_text(), dict(zip(names, values, strict=True))]).encode()
        ).hexdigest()
    )


def variable_items(database_url: str, api_secrets: dict[str, Any]) -> str:
    return json.dumps({DATABASE_ITEM: database_url, **api_secrets})


class ApiJob(pulumi.ComponentResource):
    """Writes the database URL and the API's secrets to a Nomad Variable and deploys the job,
    waiting for the deployment so that a failing migration fails ``pulumi up``."""

    job_id: pulumi.Output[str]
    deployed_image: pulumi.Output[str | None]
    fingerprint: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ApiJobArgs,
        *,
        migrator_image: pulumi.Input[str],
        migrations_hash: str,
        pull_access: Sequence[pulumi.Resource] = (),
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
        # In the group's meta: a new secret replaces the allocations one by one, under the update block.
        variables = job_variables(args, migrator_image, migrations_hash, version.apply(str))
        job = nomad.Job(
            name,
            jobspec=JOBSPEC.read_text(),
            hcl2=nomad.JobHcl2Args(vars=variables),
            detach=False,
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
        self.fingerprint = job_fingerprint(variables)
        # What Nomad runs, as the provider last read it (refreshed before every update).
        self.deployed_image = job.task_groups.apply(deployed_migrator_image)
        self.register_outputs({"jobId": self.job_id})


class DeploymentReverted(pulumi.RunError):
    """Nomad runs another version than the one this stack submitted."""


def deployed_migrator_image(task_groups: Sequence[Any] | None) -> str | None:
    """The migrator image recorded in the group's meta of the job Nomad runs."""
    for group in task_groups or []:
        name = group["name"] if isinstance(group, dict) else group.name
        meta = group["meta"] if isinstance(group, dict) else group.meta
        if name == GROUP and meta:
            image = meta.get("migrator_image")
            return str(image) if image else None
    return None


def confirm_deployed(job: ApiJob, expected_image: pulumi.Input[str]) -> pulumi.Output[str]:
    """The job id, once Nomad is seen to run ``expected_image``.

    After a failed deployment Nomad reverts the job, while Pulumi's state keeps the inputs it
    submitted: the provider then sees no change and a later ``up`` would report success. The
    refresh before every update (``options.refresh`` in Pulumi.yaml) reads the job Nomad
    runs; if its migrator image is not this stack's, ``pulumi up`` fails saying so.
    """

    def check(args: list[Any]) -> str:
        job_id, deployed, expected = args
        if deployed is not None and deployed != expected:
            message = (
                f"Nomad job {job_id} runs the db-migrator image {deployed}, not {expected}: its last deployment"
                " failed and Nomad reverted it, or the job was changed outside this stack"
                " (`nomad job history api` shows which). Fix the cause and run"
                " `pulumi up` with the change, or submit the same version again with"
                " `pulumi up --replace <URN of the nomad:index/job:Job>` (`pulumi stack --show-urns`)."
            )
            if pulumi.runtime.is_dry_run():
                pulumi.log.warn(message)
            else:
                raise DeploymentReverted(message)
        return str(job_id)

    return pulumi.Output.all(job.job_id, job.deployed_image, expected_image).apply(check)
