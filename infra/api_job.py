"""The Nomad job ``api``: the db-migrator prestart task, then the API task ``start``."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_nomad as nomad

from infra.config import StackConfig

JOBSPEC = Path(__file__).resolve().parent / "jobs" / "api.nomad.hcl"
JOB_ID = "api"
# A task may read the Nomad Variable at nomad/jobs/<job>/<group>/<task> without any policy.
DATABASE_VARIABLE_PATH = f"nomad/jobs/{JOB_ID}/api-service/db-migrator"


def job_variables(config: StackConfig, migrator_image: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """Values for the jobspec's ``variable`` blocks; HCL2 parses each string as HCL."""
    return {
        "api_image": config.api_image,
        "api_count": str(config.api_count),
        "api_port": str(config.api_port),
        "node_pool": config.node_pool,
        "datacenters": json.dumps(config.datacenters),
        "migrator_image": migrator_image,
        "database_variable_path": DATABASE_VARIABLE_PATH,
    }


class ApiJob(pulumi.ComponentResource):
    """Writes the database URL to a Nomad Variable and deploys the job, waiting for the
    deployment so that a failing migration fails ``pulumi up``."""

    job_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        migrator_image: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("api-migrations:index:ApiJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Write-only: the provider sends it to Nomad and keeps no copy in its state;
        # Pulumi keeps the input only encrypted, as a secret.
        database = nomad.Variable(
            f"{name}-database",
            path=DATABASE_VARIABLE_PATH,
            namespace="default",
            items_wo=config.database_url.apply(lambda url: json.dumps({"database_url": url})),
            items_wo_version=config.database_url_version,
            opts=child,
        )
        job = nomad.Job(
            name,
            jobspec=JOBSPEC.read_text(),
            hcl2=nomad.JobHcl2Args(vars=job_variables(config, migrator_image)),
            detach=False,
            purge_on_destroy=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[database]),
        )
        self.job_id = job.id
        self.register_outputs({"jobId": self.job_id})
