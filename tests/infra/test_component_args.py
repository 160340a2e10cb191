"""Each component declared from its own Args alone, with no stack config loaded."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import dill  # type: ignore[import-untyped]
import pulumi
import pulumi_gcp as gcp
import pytest

from infra.api_job import SECRETS_VARIABLE_PATH, ApiJob, ApiJobArgs
from infra.build_context import CONTEXT_ROOT
from infra.deadlines import MIGRATOR_ATTEMPTS, Deadlines, duration
from infra.image_content import content_hash
from infra.migration_status import _INPUTS, MigrationStatus
from infra.migrator_image import MigratorImage, PromotedImage
from infra.registry import Registry, RegistryArgs
from infra.variable_version import keyed_version
from migrator.source import collect
from tests.support import REPO, copy_project
from tests.support.pulumi_harness import Recorder, run_declarations

PASSWORD = "pW-component-secret"
MIGRATOR_IMAGE = "localhost:5000/db-migrator@sha256:" + "cd" * 32


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each component's registered outputs, by class: what the engine records in its state."""
    outputs: dict[str, Any] = {}
    real_register = pulumi.ComponentResource.register_outputs

    def register(self: pulumi.ComponentResource, given: Any) -> None:
        outputs[type(self).__name__] = given
        real_register(self, given)

    monkeypatch.setattr(pulumi.ComponentResource, "register_outputs", register)
    return outputs


def provider_of(inputs: dict[str, Any]) -> object:
    """A dynamic resource's provider, as the engine's provider host reads it
    (pulumi.dynamic.__main__.get_provider); secret-wrapped when the inputs carry a secret."""
    serialized = inputs["__provider"]
    return dill.loads(base64.b64decode(serialized["value"] if isinstance(serialized, dict) else serialized))


def test_a_registry_host_is_only_an_address(registered: dict[str, Any]) -> None:
    def declare() -> None:
        args = RegistryArgs("localhost:5000", "db-migrator", None, "reader@example.iam", None, None)
        pulumi.export("url", Registry("registry", args).url)

    run = run_declarations(declare, {})
    assert run.exports == {"url": "localhost:5000"}
    assert list(registered["Registry"]) == ["url"]
    assert [r.typ for r in run.recorder.resources] == ["api-migrations:index:Registry"]
    assert run.recorder.calls == []


def test_the_job_takes_its_deadlines_and_secrets_from_its_args(registered: dict[str, Any]) -> None:
    def declare() -> None:
        args = ApiJobArgs(
            api_image="localhost:5000/api:1",
            api_count=3,
            api_port=8080,
            api_args=["--port", "${NOMAD_PORT_api}"],
            api_env={},
            api_secrets=pulumi.Output.secret({"TOKEN": "t"}),
            api_distinct_hosts=True,
            canary=1,
            node_pool="default",
            datacenters=["dc1"],
            migration_timeout_seconds=600,
            migrate_to=None,
            allow_down=False,
            database_url=pulumi.Output.secret(f"postgresql://api:{PASSWORD}@127.0.0.1/api"),
        )
        job = ApiJob(
            "api",
            args,
            migrator_image=MIGRATOR_IMAGE,
            migrations_hash="hash",
            opts=pulumi.ResourceOptions(protect=True),
        )
        pulumi.export("deployment", job.deployment)
        pulumi.export("settings", job.settings_digest)

    run = run_declarations(declare, {})
    assert run.recorder.one("api-migrations:index:ApiJob").options.protect is True, "the caller's options are kept"
    job = run.recorder.one("nomad:index/job:Job")
    timeouts = job.options.custom_timeouts
    assert timeouts is not None
    assert timeouts.create == timeouts.update == duration(Deadlines(600, 3, 1).pulumi_timeout)
    variables = job.inputs["hcl2"]["vars"]
    assert json.loads(variables["migrator_args"]) == [
        "migrate-to", "latest", "--lock-timeout", "600s", "--run-timeout", "600s"
    ]  # fmt: skip
    assert job.inputs["rerunIfDead"] is True, "after `nomad job stop api`, `pulumi up` runs it again"
    assert (variables["api_count"], variables["api_port"], variables["canary"]) == ("3", "8080", "1")
    # The job stays when the stack goes: `pulumi destroy` neither stops nor purges the API.
    assert (job.inputs["purgeOnDestroy"], job.inputs["deregisterOnDestroy"], job.inputs["detach"]) == (
        False,
        False,
        False,
    )
    secrets = run.recorder.one("nomad:index/variable:Variable")
    variable = secrets.inputs
    assert (variable["path"], variable["namespace"]) == (SECRETS_VARIABLE_PATH, "default")
    assert variable["itemsWoVersion"] == keyed_version("00" * 32, variable["itemsWo"]["value"])
    assert variables["secrets_version"] == str(int(variable["itemsWoVersion"]))
    assert PASSWORD in variable["itemsWo"]["value"]
    assert PASSWORD not in run.plain_text()
    for child in (job, secrets):
        assert getattr(child.options.parent, "_name", None) == "api", f"{child.typ} is the component's child"
    assert run.exports["deployment"] == variables["migrator_deployment"]
    assert run.exports["settings"] == variables["settings_digest"]
    assert re.fullmatch(r"[0-9a-f]{64}", run.exports["deployment"])
    for child in (job, secrets):
        assert child.options.retain_on_delete is True, f"`pulumi destroy` leaves the {child.typ} in place"
    key = run.recorder.one("pulumi-python:dynamic:Resource", "api-secrets-version-key")
    assert getattr(key.options.parent, "_name", None) == "api", "the version key is the component's child"
    assert type(provider_of(key.inputs)).__name__ == "_KeyProvider"
    assert list(registered["ApiJob"]) == ["jobId"]


def test_the_status_resource_declares_what_its_provider_reads() -> None:
    """The provider reads these keys back from the engine: a renamed one would be None there."""

    def declare() -> None:
        MigrationStatus(
            "status",
            database_url=pulumi.Output.secret(f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"),
            versions=[1, 2],
            migrations_hash="h",
            migrator_image=MIGRATOR_IMAGE,
            deployment=pulumi.Output.from_input("d"),
            deadlines=Deadlines(600, 3, 1),
            opts=pulumi.ResourceOptions(protect=True),
        )

    status = run_declarations(declare, {}).recorder.one("pulumi-python:dynamic:Resource", "status")
    assert set(_INPUTS) <= set(status.inputs)
    assert status.inputs["table"] == "_migrations"
    assert status.inputs["deployment"] == "d"
    waits = Deadlines(600, 3, 1)
    assert (status.inputs["attempts"], status.inputs["first_run_seconds"]) == (MIGRATOR_ATTEMPTS, waits.first_run)
    assert (status.inputs["retry_seconds"], status.inputs["wait_seconds"]) == (waits.retry, waits.pulumi_timeout)
    assert type(provider_of(status.inputs)).__name__ == "MigrationStatusProvider"
    assert status.options.protect is True, "the caller's options are kept"
    assert status.options.additional_secret_outputs == ["database_url"]


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped migrations", "no migration yet"])
def test_the_image_is_declared_from_its_content_hash_alone(
    tmp_path: Path, registered: dict[str, Any], shipped: bool
) -> None:
    copy_project(tmp_path)
    if not shipped:
        for migration in (tmp_path / "migrations").glob("*.sql"):
            migration.unlink()

    def declare() -> None:
        registry = Registry("registry", RegistryArgs("localhost:5000", "db-migrator", None, None, None, None))
        image = MigratorImage("db-migrator", tmp_path, registry, opts=pulumi.ResourceOptions(protect=True))
        pulumi.export("digest", image.digest)

    run = run_declarations(declare, {})
    component = run.recorder.one("api-migrations:index:MigratorImage")
    assert component.options.protect is True, "the caller's options are kept"
    image = run.recorder.one("docker:index/image:Image")
    assert getattr(image.options.parent, "_name", None) == "db-migrator", "the component's child"
    assert image.options.retain_on_delete is True, "`pulumi destroy` leaves the pushed image alone"
    tag = content_hash(tmp_path)
    latest = max((m.version for m in collect(tmp_path / "migrations")), default=0)
    assert latest or not shipped
    context = f"{CONTEXT_ROOT}/{tag}"
    assert image.inputs == {
        "imageName": f"localhost:5000/db-migrator:{tag}",
        "build": {
            "context": context,
            "dockerfile": f"{context}/migrator/Dockerfile",
            "platform": "linux/amd64",
            "args": {"MIGRATIONS_HASH": tag, "LATEST_MIGRATION": str(latest)},
        },
        "buildOnPreview": False,
        "skipPush": False,
    }, "no registry credentials for a plain registry host"
    assert (tmp_path / context / "migrator" / "Dockerfile").is_file()
    assert run.exports["digest"] == image.outputs["repoDigest"]
    assert set(registered["MigratorImage"]) == {"digest", "contentHash"}
    assert registered["MigratorImage"]["contentHash"] == tag
    assert set(registered["Registry"]) == {"url"}


def test_an_owned_repository_lives_under_the_registry_component_and_outlives_the_stack() -> None:
    def declare() -> None:
        args = RegistryArgs("artifact-registry", "db-migrator", None, "nomad@p.iam.gserviceaccount.com", "p", "r")
        Registry("registry", args, opts=pulumi.ResourceOptions(protect=True))

    recorder = run_declarations(declare, {"gcp:project": "p", "gcp:region": "r"}).recorder
    component = recorder.one("api-migrations:index:Registry")
    assert component.options.protect is True
    repository = recorder.one("gcp:artifactregistry/repository:Repository")
    assert repository.options.protect is True
    assert repository.options.retain_on_delete is True
    reader = recorder.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert (reader.inputs["project"], reader.inputs["location"]) == ("p", "r"), "the repository's own"
    assert reader.options.retain_on_delete is True, "the running job pulls with it after `pulumi destroy`"
    for child in (repository, reader):
        assert getattr(child.options.parent, "_name", None) == "registry", f"{child.typ} is the component's child"


def test_the_registrys_lookups_go_to_the_provider_it_was_given(registered: dict[str, Any]) -> None:
    """A stack that passes its own gcp provider (another project, other credentials) gets its
    repository and token from that provider, not the default one."""

    def declare() -> None:
        explicit = gcp.Provider("explicit-gcp", project="p", region="r")
        args = RegistryArgs("artifact-registry", "db-migrator", "shared-images", None, "p", "r")
        Registry("registry", args, opts=pulumi.ResourceOptions(providers=[explicit]))

    recorder = run_declarations(declare, {}).recorder
    assert set(recorder.call_providers) == {
        "gcp:artifactregistry/getRepository:getRepository",
        "gcp:organizations/getClientConfig:getClientConfig",
    }
    for token, provider in recorder.call_providers.items():
        assert "::explicit-gcp::" in provider, f"{token} went to {provider}"
    assert list(registered["Registry"]) == ["url"]


def test_a_promoted_image_is_declared_from_its_source_stack_alone(registered: dict[str, Any]) -> None:
    source = "us-central1-docker.pkg.dev/p/db-migrator/db-migrator@sha256:" + "12" * 32

    def declare() -> None:
        args = RegistryArgs("artifact-registry", "db-migrator", None, "nomad@q.iam.gserviceaccount.com", "q", "r")
        image = PromotedImage(
            "db-migrator", REPO, "org/api-migrations/staging", args, pulumi.ResourceOptions(protect=True)
        )
        pulumi.export("digest", image.digest)

    recorder = Recorder(
        stack_outputs={"org/api-migrations/staging": {"migrationsHash": content_hash(REPO), "migratorImage": source}}
    )
    run = run_declarations(declare, {}, recorder=recorder)
    assert run.exports == {"digest": source}
    assert run.recorder.one("api-migrations:index:PromotedImage").options.protect is True, (
        "the caller's options are kept"
    )
    reader = run.recorder.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert (reader.inputs["project"], reader.inputs["location"], reader.inputs["repository"]) == (
        "p",
        "us-central1",
        "db-migrator",
    )
    for child in (reader, run.recorder.one("pulumi:pulumi:StackReference")):
        assert getattr(child.options.parent, "_name", None) == "db-migrator", f"{child.typ} is the component's child"
    assert set(registered["PromotedImage"]) == {"digest", "contentHash"}
    assert not run.recorder.of_type("docker:index/image:Image")
