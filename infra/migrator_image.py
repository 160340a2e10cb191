"""The db-migrator image: built from the repository root, tagged with its content hash."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.registry import Registry
from migrator.content import content_hash
from migrator.source import collect

IMAGE_NAME = "db-migrator"
PLATFORM = "linux/amd64"


class MigratorImage(pulumi.ComponentResource):
    """Builds ``migrator/Dockerfile`` and pushes it as ``<registry>/db-migrator:<content hash>``.

    Tags are immutable and builds are not byte-reproducible, so the image is built only
    when its tag changes: the build inputs and the registry token (new on every run) are
    left out of the diff, and a new tag replaces the resource, which builds with fresh
    credentials. ``digest`` is the pushed image as ``name@sha256:...``.
    """

    content_hash: str
    latest_migration: int
    digest: pulumi.Output[str]

    def __init__(self, name: str, root: Path, registry: Registry, opts: pulumi.ResourceOptions | None = None):
        super().__init__("api-migrations:index:MigratorImage", name, None, opts)
        self.content_hash = content_hash(root)
        self.latest_migration = max((m.version for m in collect(root / "migrations")), default=0)
        credentials = None
        if registry.username is not None and registry.password is not None:
            credentials = docker.RegistryArgs(
                server=registry.url, username=registry.username, password=registry.password
            )
        image = docker.Image(
            name,
            image_name=pulumi.Output.concat(registry.url, f"/{IMAGE_NAME}:{self.content_hash}"),
            build=docker.DockerBuildArgs(
                context=str(root),
                dockerfile=str(root / "migrator" / "Dockerfile"),
                platform=PLATFORM,
                args={
                    "MIGRATIONS_HASH": self.content_hash,
                    "LATEST_MIGRATION": str(self.latest_migration),
                },
            ),
            registry=credentials,
            build_on_preview=False,
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=["build", "registry"],
                replace_on_changes=["imageName"],
            ),
        )
        self.digest = image.repo_digest
        self.register_outputs({"digest": self.digest, "contentHash": self.content_hash})
