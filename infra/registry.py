"""Where the migrator image lives: a repository the stack owns, one it only reads, or a plain host."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

# The registry setting that means GCP Artifact Registry; any other value is a registry host.
ARTIFACT_REGISTRY = "artifact-registry"
# Versions the cleanup never touches, whatever their tag: more than Nomad keeps of a job's
# history (6 by default), so every image a live or rollback-able job version runs is kept.
KEEP_RECENT_VERSIONS = 20
UNTAGGED_AFTER = f"{7 * 24 * 3600}s"
# What the Nomad clients' account is granted on a repository they pull the migrator image from.
READER_ROLE = "roles/artifactregistry.reader"
# A reference Docker resolves to one manifest: name[:tag]@sha256:<64 lower-case hex digits>.
DIGEST_REFERENCE = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")
# An image of an Artifact Registry repository (the `url` below, then the image's name), by digest.
ARTIFACT_REGISTRY_IMAGE = re.compile(
    r"(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repository>[^/]+)/[^@/]+@sha256:[0-9a-f]{64}"
)


def cleanup_policies() -> list[gcp.artifactregistry.RepositoryCleanupPolicyArgs]:
    """Delete only untagged leftovers (an interrupted push). Every image this stack pushes
    carries an immutable tag, and the job pins one of them by digest: no delete rule can
    match an image a job runs."""
    return [
        gcp.artifactregistry.RepositoryCleanupPolicyArgs(
            id="keep-recent",
            action="KEEP",
            most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                keep_count=KEEP_RECENT_VERSIONS
            ),
        ),
        gcp.artifactregistry.RepositoryCleanupPolicyArgs(
            id="delete-untagged",
            action="DELETE",
            condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                tag_state="UNTAGGED", older_than=UNTAGGED_AFTER
            ),
        ),
    ]


@dataclass(frozen=True)
class RegistryArgs:
    """Where the stack's config says the image goes."""

    registry: str  # ARTIFACT_REGISTRY or a registry host such as localhost:5000
    repository: str  # the repository the stack owns, unless existing_repository is set
    existing_repository: str | None  # a repository the stack only looks up
    registry_reader: str | None  # service account e-mail of the Nomad clients' docker auth
    gcp_project: str | None
    gcp_region: str | None

    @property
    def uses_artifact_registry(self) -> bool:
        return self.registry == ARTIFACT_REGISTRY


class Registry(pulumi.ComponentResource):
    """For ``artifact-registry``: by default a Docker repository the stack owns, with immutable
    tags, the cleanup policy above and read access for the Nomad clients' account; protected
    and kept when the stack is destroyed. With ``existing_repository``: that repository, looked
    up and pushed to, never managed. For a registry host (``localhost:5000``): just its address.

    ``pull_access`` lists what must exist before a Nomad client can pull from it."""

    url: pulumi.Output[str]
    server: pulumi.Output[str]
    username: pulumi.Output[str] | None
    password: pulumi.Output[str] | None
    pull_access: list[pulumi.Resource]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("api-migrations:index:Registry", name, None, opts)
        self.pull_access = []
        if not args.uses_artifact_registry:
            self.url = self.server = pulumi.Output.from_input(args.registry)
            self.username = self.password = None
            self.register_outputs({"url": self.url})
            return

        if args.existing_repository:
            found = gcp.artifactregistry.get_repository_output(
                location=args.gcp_region,
                project=args.gcp_project,
                repository_id=args.existing_repository,
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            location, project, repository_id = found.location, found.project, found.repository_id
        else:
            owned = self._owned(name, args)
            location, project, repository_id = owned.location, owned.project, owned.repository_id
        self.server = pulumi.Output.concat(location, "-docker.pkg.dev")
        self.url = pulumi.Output.concat(self.server, "/", project, "/", repository_id)
        # A short-lived OAuth token of the identity running Pulumi, fetched on every run: no key file.
        client = gcp.organizations.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.username = pulumi.Output.from_input("oauth2accesstoken")
        self.password = pulumi.Output.secret(client.access_token)
        self.register_outputs({"url": self.url})

    def _owned(self, name: str, args: RegistryArgs) -> gcp.artifactregistry.Repository:
        repository = gcp.artifactregistry.Repository(
            name,
            repository_id=args.repository,
            location=args.gcp_region,
            project=args.gcp_project,
            format="DOCKER",
            description="The db-migrator image, tagged with its content hash",
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
            cleanup_policy_dry_run=False,
            cleanup_policies=cleanup_policies(),
            # Images of live and past job versions live here: never deleted with the stack.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        if args.registry_reader:
            self.pull_access.append(
                gcp.artifactregistry.RepositoryIamMember(
                    f"{name}-nomad-reader",
                    project=repository.project,
                    location=repository.location,
                    repository=repository.name,
                    role=READER_ROLE,
                    member=f"serviceAccount:{args.registry_reader}",
                    # The running job pulls with it: `pulumi destroy` leaves it in place.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        return repository
