"""Where the migrator image lives: an Artifact Registry repository, or an existing registry."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig

KEEP_RECENT_VERSIONS = 20


class Registry(pulumi.ComponentResource):
    """For ``artifact-registry``: a Docker repository with immutable tags, a cleanup policy
    that keeps recent versions and read access for the Nomad clients. For a registry host
    (``localhost:5000``): no resource at all, just its address."""

    url: pulumi.Output[str]
    username: pulumi.Output[str] | None
    password: pulumi.Output[str] | None

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("api-migrations:index:Registry", name, None, opts)
        if not config.uses_artifact_registry:
            self.url = pulumi.Output.from_input(config.registry)
            self.username = self.password = None
            self.register_outputs({"url": self.url})
            return

        child = pulumi.ResourceOptions(parent=self)
        repository = gcp.artifactregistry.Repository(
            name,
            repository_id=config.repository,
            location=config.gcp_region,
            project=config.gcp_project,
            format="DOCKER",
            description="API images, including the db-migrator prestart image",
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=KEEP_RECENT_VERSIONS
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-old",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="ANY", older_than="2592000s"
                    ),
                ),
            ],
            opts=child,
        )
        if config.registry_reader:
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-nomad-reader",
                project=repository.project,
                location=repository.location,
                repository=repository.name,
                role="roles/artifactregistry.reader",
                member=f"serviceAccount:{config.registry_reader}",
                opts=child,
            )
        self.url = pulumi.Output.concat(
            repository.location, "-docker.pkg.dev/", repository.project, "/", repository.repository_id
        )
        # A short-lived OAuth token of the identity running Pulumi: no key file anywhere.
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.username = pulumi.Output.from_input("oauth2accesstoken")
        self.password = pulumi.Output.secret(client.access_token)
        self.register_outputs({"url": self.url})
