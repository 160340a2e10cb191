"""The db-migrator image: built from the repository's image files, tagged with their content hash."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.build_context import materialise
from infra.image_content import content_hash
from infra.registry import Registry
from migrator.source import collect

IMAGE_NAME = "db-migrator"
PLATFORM = "linux/amd64"


class MigratorImage(pulumi.ComponentResource):
    """Builds ``migrator/Dockerfile`` and pushes it as ``<registry>/db-migrator:<content hash>``.

    Tags are immutable and builds are not byte-reproducible, so every input is a function of
    the content hash alone: same content, no diff, no build. A new hash changes the tag (and
    the context), and the provider's update builds and pushes with this run's credentials.
    The provider never diffs the registry's username or password (pulumi-docker
    ``diffUpdates``), so the fresh token of every run is used without causing a rebuild.
    ``digest`` is the pushed image as ``name@sha256:...``.
    """

    content_hash: str
    latest_migration: int
    digest: pulumi.Output[str]

    def __init__(self, name: str, root: Path, registry: Registry, opts: pulumi.ResourceOptions | None = None):
        super().__init__("api-migrations:index:MigratorImage", name, None, opts)
        self.content_hash = content_hash(root)
        self.latest_migration = max((m.version for m in collect(root / "migrations")), default=0)
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
