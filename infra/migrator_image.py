"""The db-migrator image: built from the repository's image files and tagged with their content
hash, or promoted: the very image another stack built and ran, when it has the same content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_gcp as gcp

from infra.build_context import materialise
from infra.image_content import content_hash
from infra.registry import ARTIFACT_REGISTRY_IMAGE, DIGEST_REFERENCE, READER_ROLE, Registry, RegistryArgs
from migrator import collect

IMAGE_NAME = "db-migrator"
PLATFORM = "linux/amd64"


class MigratorImage(pulumi.ComponentResource):
    """Builds ``migrator/Dockerfile`` and pushes it as ``<registry>/db-migrator:<content hash>``.

    Tags are immutable and builds are not byte-reproducible, so every input is a function of
    the content hash alone: same content, no diff, no build. A new hash changes the tag (and
    the context), and the provider's update builds and pushes with this run's credentials.
    The provider never diffs the registry's username or password (pulumi-docker
    ``diffUpdates``), so the fresh token of every run is used without causing a rebuild.
    ``digest`` is the pushed image as ``name@sha256:...``; ``pull_access`` is empty: the
    image is in the stack's own registry, whose read access ``Registry`` grants.
    """

    content_hash: str
    latest_migration: int
    digest: pulumi.Output[str]
    pull_access: list[pulumi.Resource]

    def __init__(self, name: str, root: Path, registry: Registry, opts: pulumi.ResourceOptions | None = None):
        super().__init__("api-migrations:index:MigratorImage", name, None, opts)
        self.content_hash = content_hash(root)
        self.latest_migration = max((m.version for m in collect(root / "migrations")), default=0)
        self.pull_access = []
        context = materialise(root, self.content_hash)
        credentials = None
        if registry.username is not None and registry.password is not None:
            credentials = docker.RegistryArgs(
                server=registry.server, username=registry.username, password=registry.password
            )
        image = docker.Image(
            name,
            image_name=pulumi.Output.concat(registry.url, f"/{IMAGE_NAME}:{self.content_hash}"),
            build=docker.DockerBuildArgs(
                context=context,
                dockerfile=f"{context}/migrator/Dockerfile",
                platform=PLATFORM,
                args={
                    "MIGRATIONS_HASH": self.content_hash,
                    "LATEST_MIGRATION": str(self.latest_migration),
                },
            ),
            registry=credentials,
            build_on_preview=False,
            # Past job versions run it: `pulumi destroy` leaves it in the registry (pulumi-docker's
            # delete does nothing either; the engine does not even ask).
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        self.digest = image.repo_digest
        self.register_outputs({"digest": self.digest, "contentHash": self.content_hash})


class PromotionRefused(pulumi.RunError):
    """The stack to promote from runs another image than this checkout would build."""


def _setting(source_stack: str) -> str:
    return f"api-migrations:promoteFrom {source_stack!r}"


def promoted_digest(source_stack: str, content: str, source_hash: Any, source_image: Any) -> str:
    """The source stack's image, if it was built from exactly ``content``."""
    where = _setting(source_stack)
    if source_hash is None or source_image is None:
        raise PromotionRefused(
            f"{where} has no migrationsHash and migratorImage outputs: run `pulumi up` on that stack first"
        )
    if source_hash != content:
        raise PromotionRefused(
            f"{where} runs the db-migrator image of content {source_hash}, and this checkout's content is"
            f" {content}: promote from a checkout of the commit that stack deployed, or deploy this commit"
            " there first"
        )
    if not DIGEST_REFERENCE.fullmatch(str(source_image)):
        raise PromotionRefused(f"{where}: its migratorImage {source_image!r} is not a digest reference")
    return str(source_image)


def _repository_of(source_stack: str, image: str) -> dict[str, str]:
    found = ARTIFACT_REGISTRY_IMAGE.fullmatch(image)
    if found is None:
        raise PromotionRefused(
            f"{_setting(source_stack)}: its image {image} is not in an Artifact Registry"
            " repository, so api-migrations:registryReaderServiceAccount cannot be granted read access to it;"
            " leave that setting empty and give the Nomad clients access to it yourself"
        )
    return found.groupdict()


class PromotedImage(pulumi.ComponentResource):
    """The db-migrator image ``source_stack`` (a stack reference such as
    ``my-org/api-migrations/staging``) built, pushed and ran: exactly that digest, never rebuilt.
    Refused unless that stack's ``migrationsHash`` is this checkout's content hash, so a stack
    deploys only an image of its own content. On Artifact Registry with a reader account
    (``registryReaderServiceAccount``), that account is granted read access on the source image's
    repository (kept when this stack is destroyed), and the job waits for it (``pull_access``)."""

    content_hash: str
    digest: pulumi.Output[str]
    pull_access: list[pulumi.Resource]

    def __init__(
        self,
        name: str,
        root: Path,
        source_stack: str,
        registry: RegistryArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("api-migrations:index:PromotedImage", name, None, opts)
        self.content_hash = content_hash(root)
        source = pulumi.StackReference(
            f"{name}-source", stack_name=source_stack, opts=pulumi.ResourceOptions(parent=self)
        )
        self.digest = pulumi.Output.all(source.get_output("migrationsHash"), source.get_output("migratorImage")).apply(
            lambda found: promoted_digest(source_stack, self.content_hash, *found)
        )
        self.pull_access = []
        if registry.uses_artifact_registry and registry.registry_reader:
            repository = self.digest.apply(lambda image: _repository_of(source_stack, image))
            self.pull_access.append(
                gcp.artifactregistry.RepositoryIamMember(
                    f"{name}-nomad-reader",
                    project=repository["project"],
                    location=repository["location"],
                    repository=repository["repository"],
                    role=READER_ROLE,
                    member=f"serviceAccount:{registry.registry_reader}",
                    # The running job pulls with it: `pulumi destroy` leaves it in place.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        self.register_outputs({"digest": self.digest, "contentHash": self.content_hash})
