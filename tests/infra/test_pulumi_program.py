"""The Pulumi program under Pulumi's mocks: what each stack declares, and what it never does.

A mock accepts anything, so these tests check what the real engine and providers would:
pulumi-docker's context digest (provider/provider.go ``hashContext``), the Nomad provider's
timeouts and the engine's handling of resource options.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from infra.api_job import JOBSPEC, SECRETS_VARIABLE_PATH, DeploymentReverted
from infra.build_context import CONTEXT_ROOT
from infra.config import ConfigError, default
from infra.deadlines import Deadlines
from infra.image_content import IMAGE_FILES, content_hash, image_files
from infra.migrator_image import PromotionRefused
from tests.support import REPO, copy_project
from tests.support.pulumi_harness import (
    ACCESS_TOKEN,
    API_DIGEST,
    APPLIED,
    DATABASE_URL,
    PASSWORD,
    STAGING,
    Recorder,
    Run,
    run_program,
    staging,
)

DEV = {
    "api-migrations:registry": "localhost:5000",
    "api-migrations:apiImage": "localhost:5000/api:dev-1",
    "api-migrations:allowMutableApiImage": "true",  # as Pulumi.dev.yaml
    "api-migrations:canary": "0",
    "api-migrations:databaseUrl": DATABASE_URL,
    "api-migrations:reportMigrations": "false",
}
JOB = "nomad:index/job:Job"
IMAGE = "docker:index/image:Image"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
READER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
VARIABLE = "nomad:index/variable:Variable"


def declared(run: Run) -> dict[tuple[str, str], dict[str, object]]:
    """Resource inputs by type and name (mocks may register them in any order)."""
    return {(r.typ, r.name): r.inputs for r in run.recorder.resources}


def job_vars(run: Run) -> dict[str, str]:
    return dict(run.recorder.one(JOB).inputs["hcl2"]["vars"])


def seconds(text: str) -> int:
    """A Go duration as the providers parse it (whole seconds is all the program writes)."""
    assert text.endswith("s"), text
    assert text[:-1].isdigit(), text
    return int(text[:-1])


def go_mode_string(mode: int) -> str:
    """Go's fs.FileMode.String() for a regular file (what hashContext writes)."""
    bits = "rwxrwxrwx"
    return "-" + "".join(bits[i] if mode & (1 << (8 - i)) else "-" for i in range(9))


def provider_context_digest(project: Path, build: dict[str, Any]) -> str:
    """pulumi-docker's contextDigest (provider/provider.go hashContext), for a context whose
    .dockerignore lets exactly the listed image files through: the Dockerfile under the name
    "Dockerfile" with mode 0, then every file in lexical order with its mode."""
    context = project / build["context"]
    dockerfile = project / build["dockerfile"]
    entries = [("Dockerfile", go_mode_string(0), hashlib.sha256(dockerfile.read_bytes()).digest())]
    for name in image_files(context):
        path = context / name
        entries.append(
            (name, go_mode_string(stat.S_IMODE(path.stat().st_mode)), hashlib.sha256(path.read_bytes()).digest())
        )
    accumulated = b"".join(name.encode() + mode.encode() + digest + b"\0" for name, mode, digest in entries)
    return hashlib.sha256(accumulated).hexdigest()


def test_staging_declares_repository_image_and_job() -> None:
    run = staging()
    repository = run.recorder.one(REPOSITORY)
    assert repository.inputs["format"] == "DOCKER"
    assert repository.inputs["description"] == "The db-migrator image, tagged with its content hash"
    # Only untagged leftovers are ever deleted; more versions are kept than Nomad's job history.
    assert repository.inputs["cleanupPolicies"] == [
        {"id": "keep-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 20}},
        {"id": "delete-untagged", "action": "DELETE", "condition": {"tagState": "UNTAGGED", "olderThan": "604800s"}},
    ]
    assert repository.inputs["cleanupPolicyDryRun"] is False
    assert repository.inputs["dockerConfig"] == {"immutableTags": True}
    assert repository.inputs["repositoryId"] == "db-migrator"
    assert repository.inputs["location"] == "us-central1"
    reader = run.recorder.one(READER).inputs
    assert reader["role"] == "roles/artifactregistry.reader"
    assert reader["member"] == "serviceAccount:nomad@e2b-staging.iam.gserviceaccount.com"

    image = run.recorder.one(IMAGE)
    tag = content_hash(REPO)
    assert image.inputs["imageName"] == f"us-central1-docker.pkg.dev/e2b-staging/db-migrator/db-migrator:{tag}"
    build = image.inputs["build"]
    assert build["platform"] == "linux/amd64"
    assert build["args"]["MIGRATIONS_HASH"] == tag
    assert image.inputs["registry"]["value"]["server"] == "us-central1-docker.pkg.dev"
    assert image.inputs["registry"]["value"]["username"] == "oauth2accesstoken"  # what GCP's tokens go with
    assert image.inputs["registry"]["value"]["password"] == ACCESS_TOKEN  # a secret, from the GCP provider
    assert "gcp:organizations/getClientConfig:getClientConfig" in run.recorder.calls

    job = run.recorder.one(JOB).inputs
    assert job["detach"] is False
    assert job["deregisterOnDestroy"] is False
    assert job["jobspec"] == JOBSPEC.read_text()
    assert job_vars(run)["migrator_image"] == image.outputs["repoDigest"] == run.exports["migratorImage"]
    assert job_vars(run)["api_count"] == "2"
    assert job_vars(run)["datacenters"] == '["us-central1-a"]'
    variable = run.recorder.one("nomad:index/variable:Variable").inputs
    assert variable["path"] == SECRETS_VARIABLE_PATH
    assert job_vars(run)["secrets_version"] == str(int(variable["itemsWoVersion"])), "the task's env carries it"

    assert run.exports["migrationsHash"] == tag
    assert run.exports["registryUrl"] == "us-central1-docker.pkg.dev/e2b-staging/db-migrator"
    assert run.exports["apiJobId"] == "api-id"


def test_image_inputs_never_depend_on_path_umask_times_or_token(tmp_path: Path) -> None:
    """Item 2: two checkouts at different paths, one made under umask 002, give identical image
    inputs and the same provider context digest; only the registry password (which the
    provider leaves out of its diff) may differ. Nothing is ignored by the engine."""
    first, second = copy_project(tmp_path / "alice" / "repo"), copy_project(tmp_path / "ci-runner" / "checkout")
    for name in image_files(second.parent):
        os.chmod(second.parent / name, 0o664)
        later = time.time() + 3600
        os.utime(second.parent / name, (later, later))
    assert provider_context_digest(first.parent, {"context": ".", "dockerfile": "migrator/Dockerfile"}) != (
        provider_context_digest(second.parent, {"context": ".", "dockerfile": "migrator/Dockerfile"})
    ), "the checkouts differ in modes, which the provider hashes"

    tokens = iter(["ya29.token-of-run-1", "ya29.token-of-run-2"])
    runs = []
    for program in (first, second):
        recorder = Recorder(access_token=next(tokens))
        runs.append((program.parent, staging(program=program, recorder=recorder).recorder.one(IMAGE)))
    (root_a, image_a), (root_b, image_b) = runs
    for image in (image_a, image_b):
        assert not image.options.ignore_changes
        assert not image.options.replace_on_changes
        build = image.inputs["build"]
        assert not Path(build["context"]).is_absolute()
        assert not Path(build["dockerfile"]).is_absolute()
    without_password = [
        {**i.inputs, "registry": {**i.inputs["registry"]["value"], "password": None}} for i in (image_a, image_b)
    ]
    assert without_password[0] == without_password[1]
    assert image_a.inputs["registry"]["value"]["password"] != image_b.inputs["registry"]["value"]["password"]
    build = image_a.inputs["build"]
    assert provider_context_digest(root_a, build) == provider_context_digest(root_b, build)
    assert content_hash(root_a / build["context"]) == content_hash(root_a)
    assert (root_a / build["dockerfile"]).read_bytes() == (REPO / "migrator" / "Dockerfile").read_bytes()


def test_one_byte_changes_the_tag_and_the_context(tmp_path: Path) -> None:
    program = copy_project(tmp_path / "a")
    first, second = staging(program=program), staging(program=program)
    assert declared(first) == declared(second)

    migration = next((tmp_path / "a" / "migrations").glob("*.sql"))
    migration.write_bytes(migration.read_bytes() + b"\n-- one more byte\n")
    changed = staging(program=program)
    old, new = first.recorder.one(IMAGE).inputs, changed.recorder.one(IMAGE).inputs
    assert old["imageName"].rsplit(":", 1)[1] != new["imageName"].rsplit(":", 1)[1]
    assert old["build"]["context"] != new["build"]["context"]
    assert job_vars(changed)["migrator_image"] != job_vars(first)["migrator_image"]
    contexts = [p.name for p in (tmp_path / "a" / CONTEXT_ROOT).iterdir()]
    assert contexts == [content_hash(tmp_path / "a")], "the old context is pruned"


def test_hash_covers_exactly_the_dockerignore_allow_list() -> None:
    allowed = [line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert sorted(allowed) == sorted(IMAGE_FILES)
    assert "migrator/Dockerfile" in image_files(REPO)
    assert "migrator/cli/program.py" in image_files(REPO)


def dockerfile_base(dockerfile: Path) -> str:
    """What the Dockerfile builds on when no build argument overrides it."""
    lines = dockerfile.read_text().splitlines()
    assert [line for line in lines if line.startswith("FROM ")] == ["FROM ${BASE_IMAGE}"]
    [base] = [line.removeprefix("ARG BASE_IMAGE=") for line in lines if line.startswith("ARG BASE_IMAGE=")]
    return base


def test_the_base_image_is_pinned_by_digest_and_part_of_the_tag(tmp_path: Path) -> None:
    """Item 11: a tag for a base would let two builds of one content hash differ. The base is a
    digest in the Dockerfile, which the content hash covers, and Pulumi builds on it."""
    base = dockerfile_base(REPO / "migrator" / "Dockerfile")
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    image = staging().recorder.one(IMAGE).inputs
    assert "BASE_IMAGE" not in image["build"]["args"], "no build argument overrides the pinned base"
    assert dockerfile_base(REPO / image["build"]["dockerfile"]) == base

    program = copy_project(tmp_path / "a")
    dockerfile = tmp_path / "a" / "migrator" / "Dockerfile"
    other_base = base.replace(base[-64:], "0" * 64)
    dockerfile.write_text(dockerfile.read_text().replace(base, other_base))
    moved = staging(program=program).recorder.one(IMAGE).inputs
    assert moved["imageName"] == f"{image['imageName'].rsplit(':', 1)[0]}:{content_hash(tmp_path / 'a')}"
    assert moved["imageName"] != image["imageName"], "another base is another image, under another tag"


STAGING_STACK = "my-org/api-migrations/staging"
STAGING_IMAGE = "us-central1-docker.pkg.dev/e2b-staging/db-migrator/db-migrator@sha256:" + "5a" * 32
PROD = {
    **STAGING,
    "gcp:project": "e2b-prod",
    "api-migrations:registryReaderServiceAccount": "nomad@e2b-prod.iam.gserviceaccount.com",
    "api-migrations:promoteFrom": STAGING_STACK,
}


def promote(
    outputs: dict[str, Any], overrides: Mapping[str, str | None] | None = None, **kw: Any
) -> tuple[Run, Recorder]:
    recorder = Recorder(stack_outputs={STAGING_STACK: outputs})
    config = {k: v for k, v in {**PROD, **(overrides or {})}.items() if v is not None}
    return run_program(REPO / "__main__.py", config, stack="prod", recorder=recorder, **kw), recorder


def test_prod_deploys_the_digest_staging_ran_without_building_it() -> None:
    """Item 11: promotion. The job runs exactly staging's digest, nothing is built or pushed,
    and the prod clients' account may read staging's repository before the job deploys."""
    run, recorder = promote({"migrationsHash": content_hash(REPO), "migratorImage": STAGING_IMAGE})
    assert not recorder.of_type(IMAGE), "nothing is built"
    source = recorder.one("pulumi:pulumi:StackReference")
    assert source.inputs["name"] == STAGING_STACK
    assert job_vars(run)["migrator_image"] == run.exports["migratorImage"] == STAGING_IMAGE
    assert job_vars(run)["migrations_hash"] == run.exports["migrationsHash"] == content_hash(REPO)
    readers = {r.inputs["project"]: r for r in recorder.of_type(READER)}
    assert set(readers) == {"e2b-prod", "e2b-staging"}, "its own repository's, and staging's"
    granted = readers["e2b-staging"]
    assert (granted.inputs["location"], granted.inputs["repository"]) == ("us-central1", "db-migrator")
    assert granted.inputs["role"] == "roles/artifactregistry.reader"
    assert granted.inputs["member"] == "serviceAccount:nomad@e2b-prod.iam.gserviceaccount.com"
    assert granted.options.retain_on_delete is True
    depends = {getattr(d, "_name", None) for d in recorder.one(JOB).options.depends_on or []}  # type: ignore[union-attr]
    assert granted.name in depends


def test_promotion_needs_no_reader_account() -> None:
    run, recorder = promote(
        {"migrationsHash": content_hash(REPO), "migratorImage": STAGING_IMAGE},
        {"api-migrations:registryReaderServiceAccount": None},
    )
    assert not recorder.of_type(READER)
    assert job_vars(run)["migrator_image"] == STAGING_IMAGE


OTHER_HASH = "f" * 64
PROMOTION_REFUSALS = [
    (
        {"migrationsHash": OTHER_HASH, "migratorImage": STAGING_IMAGE},
        f"api-migrations:promoteFrom {STAGING_STACK!r} runs the db-migrator image of content {OTHER_HASH}, and"
        f" this checkout's content is {content_hash(REPO)}: promote from a checkout of the commit that stack"
        " deployed, or deploy this commit there first",
    ),
    (
        {},
        f"api-migrations:promoteFrom {STAGING_STACK!r} has no migrationsHash and migratorImage outputs:"
        " run `pulumi up` on that stack first",
    ),
    (
        {"migrationsHash": content_hash(REPO)},
        f"api-migrations:promoteFrom {STAGING_STACK!r} has no migrationsHash and migratorImage outputs:"
        " run `pulumi up` on that stack first",
    ),
    (
        {"migrationsHash": content_hash(REPO), "migratorImage": "registry.example/db-migrator:latest"},
        f"api-migrations:promoteFrom {STAGING_STACK!r}: its migratorImage"
        " 'registry.example/db-migrator:latest' is not a digest reference",
    ),
    (
        {"migrationsHash": content_hash(REPO), "migratorImage": "localhost:5000/db-migrator@sha256:" + "0" * 64},
        f"api-migrations:promoteFrom {STAGING_STACK!r}: its image localhost:5000/db-migrator@sha256:{'0' * 64}"
        " is not in an Artifact Registry repository, so api-migrations:registryReaderServiceAccount cannot be"
        " granted read access to it; leave that setting empty and give the Nomad clients access to it yourself",
    ),
]


@pytest.mark.parametrize(("outputs", "message"), PROMOTION_REFUSALS)
@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_promotion_of_another_image_is_refused(outputs: dict[str, Any], message: str, preview: bool) -> None:
    with pytest.raises(PromotionRefused) as caught:
        promote(outputs, preview=preview)
    assert str(caught.value) == message


def test_a_promoting_dev_stack_grants_nothing_in_gcp() -> None:
    image = "localhost:5000/db-migrator@sha256:" + "0" * 64
    recorder = Recorder(stack_outputs={"dev": {"migrationsHash": content_hash(REPO), "migratorImage": image}})
    config = {**DEV, "api-migrations:promoteFrom": "dev", "api-migrations:registryReaderServiceAccount": "r@x.iam"}
    run = run_program(REPO / "__main__.py", config, stack="laptop", recorder=recorder)
    assert not [r for r in recorder.resources if r.typ.startswith("gcp:")]
    assert job_vars(run)["migrator_image"] == image


@pytest.mark.parametrize(
    ("stack", "name", "message"),
    [
        ("prod", "prod", "api-migrations:promoteFrom 'prod' is this stack: name the stack whose image it deploys"),
        (
            "prod",
            "my-org/api-migrations/prod",
            "api-migrations:promoteFrom 'my-org/api-migrations/prod' is this stack: name the stack whose image it"
            " deploys",
        ),
        (
            "prod",
            "stag ing",
            "api-migrations:promoteFrom must name a stack, like staging or my-org/api-migrations/staging,"
            " got 'stag ing'",
        ),
        (
            "prod",
            "a/b/c/d",
            "api-migrations:promoteFrom must name a stack, like staging or my-org/api-migrations/staging,"
            " got 'a/b/c/d'",
        ),
    ],
)
def test_promote_from_must_name_another_stack(stack: str, name: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        run_program(REPO / "__main__.py", {**PROD, "api-migrations:promoteFrom": name}, stack=stack)
    assert str(caught.value) == message


def test_promote_from_the_same_stack_name_of_another_project_is_allowed() -> None:
    other = "my-org/other-project/prod"
    recorder = Recorder(stack_outputs={other: {"migrationsHash": content_hash(REPO), "migratorImage": STAGING_IMAGE}})
    run = run_program(
        REPO / "__main__.py", {**PROD, "api-migrations:promoteFrom": other}, stack="prod", recorder=recorder
    )
    assert job_vars(run)["migrator_image"] == STAGING_IMAGE


def test_owned_repository_is_dedicated_protected_and_never_deletes_a_tagged_image() -> None:
    """Item 3: the stack's own repository, kept on destroy; cleanup deletes only untagged data."""
    repository = staging().recorder.one(REPOSITORY)
    assert repository.inputs["repositoryId"] != "e2b-orchestration"
    assert repository.options.protect is True
    assert repository.options.retain_on_delete is True
    policies = repository.inputs["cleanupPolicies"]
    deletes = [p for p in policies if p["action"] == "DELETE"]
    assert deletes
    assert all(p["condition"]["tagState"] == "UNTAGGED" for p in deletes)
    assert repository.inputs["cleanupPolicyDryRun"] is False


def test_destroy_deletes_nothing_the_running_job_depends_on() -> None:
    """Item 10: the engine deletes a stack's resources dependents first and stops at a protected
    one only when it reaches it (pulumi/pulumi pkg/resource/deploy/step.go DeleteStep.Apply), so
    the Variable and the read binding were deleted under a job that keeps running. Every resource
    the job needs, and the job itself, is kept by the engine (retain_on_delete: no provider call),
    and the repository stays protected."""
    run = staging()
    kept = {r.typ: r.options for r in run.recorder.resources if not r.typ.startswith(("api-migrations:", "pulumi"))}
    assert set(kept) == {JOB, IMAGE, REPOSITORY, READER, VARIABLE}
    assert {typ: options.retain_on_delete for typ, options in kept.items()} == dict.fromkeys(kept, True)
    protected = {typ for typ, options in kept.items() if options.protect}
    assert protected == {REPOSITORY}
    assert run.recorder.one(JOB).inputs["deregisterOnDestroy"] is False


def test_an_existing_repository_is_only_looked_up() -> None:
    run = staging({"api-migrations:existingRepository": "e2b-orchestration"})
    assert not run.recorder.of_type(REPOSITORY)
    assert not run.recorder.of_type(READER)
    assert "gcp:artifactregistry/getRepository:getRepository" in run.recorder.calls
    assert run.exports["registryUrl"] == "us-central1-docker.pkg.dev/e2b-staging/e2b-orchestration"
    assert run.recorder.one(IMAGE).inputs["imageName"].startswith(run.exports["registryUrl"] + "/db-migrator:")


def test_job_timeouts_outlast_the_whole_deployment() -> None:
    """Item 4: the provider waits 5 minutes unless told; every batch may take progress_deadline."""
    run = staging({"api-migrations:apiCount": "3", "api-migrations:canary": "1"})
    job = run.recorder.one(JOB)
    timeouts = job.options.custom_timeouts
    assert timeouts is not None
    progress = seconds(job_vars(run)["progress_deadline"])
    batches = 1 + (3 - 1)  # the canary, then the two others one at a time
    for timeout in (timeouts.create, timeouts.update):
        assert timeout is not None
        assert seconds(timeout) > batches * progress


def test_dev_stack_rolls_without_canary_on_one_node() -> None:
    """Item 5: one node cannot hold a canary beside the old allocation on a static port."""
    dev = job_vars(run_program(REPO / "__main__.py", DEV, stack="dev"))
    assert dev["canary"] == "0"
    dev_stack = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    assert int(dev_stack["api-migrations:canary"]) == 0
    assert job_vars(staging({"api-migrations:canary": "2"}))["canary"] == "2"


@pytest.mark.parametrize("canary", ["3", "-1"])
def test_canary_must_fit_the_count(canary: str) -> None:
    with pytest.raises(ConfigError, match="api-migrations:canary must be between 0 and 2"):
        staging({"api-migrations:canary": canary})


def test_api_task_gets_args_env_and_secrets_through_the_variable() -> None:
    """Item 6: args, plain env, secrets via the Nomad Variable at the group path, one database URL."""
    run = staging(
        {
            "api-migrations:apiArgs": '["--port", "${NOMAD_PORT_api}", "--verbose"]',
            "api-migrations:apiEnv": '{"LOKI_URL": "http://loki:3100", "DEBUG": true, "QUIET": false, "WORKERS": 4}',
            "api-migrations:apiSecrets": '{"SUPABASE_JWT_SECRETS": "s3cr3t-jwt"}',
            "api-migrations:apiDistinctHosts": "true",
        },
        secret_keys=("api-migrations:databaseUrl", "api-migrations:apiSecrets"),
    )
    variables = job_vars(run)
    assert variables["api_args"] == '["--port", "$${NOMAD_PORT_api}", "--verbose"]'
    assert variables["api_env"] == '{"LOKI_URL": "http://loki:3100", "DEBUG": "true", "QUIET": "false", "WORKERS": "4"}'
    assert variables["api_distinct_hosts"] == "true"
    assert variables["secrets_path"] == SECRETS_VARIABLE_PATH == "nomad/jobs/api/api-service"
    items = run.recorder.one("nomad:index/variable:Variable").inputs["itemsWo"]
    assert items["value"] == '{"database_url": "' + DATABASE_URL + '", "SUPABASE_JWT_SECRETS": "s3cr3t-jwt"}'
    assert "s3cr3t-jwt" not in run.plain_text()
    assert "s3cr3t-jwt" not in repr(variables)


VERSION_KEY = "0f" * 32


def written_version(key: str, items: str) -> int:
    """items_wo_version: HMAC-SHA-256 of the Variable's JSON under the stack's key (hexadecimal),
    its first 6 bytes big-endian, plus one."""
    return int.from_bytes(hmac.new(bytes.fromhex(key), items.encode(), hashlib.sha256).digest()[:6], "big") + 1


def variable_version(overrides: Mapping[str, str | None] | None = None, key: str = VERSION_KEY) -> int:
    run = staging(
        overrides,
        secret_keys=("api-migrations:databaseUrl", "api-migrations:apiSecrets"),
        recorder=Recorder(version_key=key),
    )
    variable = run.recorder.one(VARIABLE).inputs
    version = variable["itemsWoVersion"]
    assert isinstance(version, float), "plain: a number (the engine's float64), not a secret"
    assert written_version(key, variable["itemsWo"]["value"]) == version
    assert job_vars(run)["secrets_version"] == str(int(version)), "the db-migrator task's env carries it"
    return int(version)


def test_the_variable_is_written_again_exactly_when_its_content_changes() -> None:
    """Item 9: the provider sends items_wo only when items_wo_version changes, so the version is
    the content's: a rotated password or API secret is written in the same `up` that reads
    with it, and nothing else rewrites the Variable."""
    first = variable_version()
    assert variable_version() == first, "the same content, the same version: no write, no rollout"
    rotated = variable_version({"api-migrations:databaseUrl": DATABASE_URL.replace(PASSWORD, "pW-rotated")})
    secret = variable_version({"api-migrations:apiSecrets": '{"SUPABASE_JWT_SECRETS": "s3cr3t-jwt"}'})
    other_key = variable_version(key="a1" * 32)
    assert len({first, rotated, secret, other_key}) == 4


def test_no_digest_of_a_secret_is_in_plain_state() -> None:
    """A plain digest of the database URL (or of the Variable's JSON) could be matched against
    guessed passwords; the key that makes the version is the stack's secret."""
    run = staging(recorder=Recorder(version_key=VERSION_KEY))
    items = run.recorder.one(VARIABLE).inputs["itemsWo"]["value"]
    key = run.recorder.one("pulumi-python:dynamic:Resource", "api-secrets-version-key")
    assert key.options.additional_secret_outputs == ["key"], "the engine stores the key encrypted"
    run.recorder.resources.remove(key)  # its output is secret in the engine's state, not in the mocks'
    plain = run.plain_text() + repr(run.exports)
    assert VERSION_KEY not in plain
    for secret in (DATABASE_URL, PASSWORD, items):
        for algorithm in sorted(hashlib.algorithms_guaranteed - {"shake_128", "shake_256"}):
            digest = hashlib.new(algorithm, secret.encode()).digest()
            assert digest.hex() not in plain, algorithm
            assert str(int.from_bytes(digest[:6], "big") + 1) not in plain, algorithm


def test_a_stack_that_still_sets_database_url_version_works_and_is_told_to_drop_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    run = staging({"api-migrations:databaseUrlVersion": "7"})
    assert run.recorder.one(VARIABLE).inputs["itemsWoVersion"] != 7
    assert warnings == [
        "api-migrations:databaseUrlVersion is no longer read: the Nomad Variable is written again whenever"
        " its content changes. Remove it with `pulumi config rm databaseUrlVersion`"
    ]


def test_plain_api_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="apiSecrets is stored in plain text"):
        staging({"api-migrations:apiSecrets": '{"TOKEN": "x"}'})


def test_the_schema_default_for_api_secrets_is_not_a_plain_secret() -> None:
    # The real engine hands the program Pulumi.yaml's default ({}) as plain config.
    run = staging({"api-migrations:apiSecrets": "{}"})
    assert run.recorder.one("nomad:index/variable:Variable") is not None


def test_secret_api_settings_are_checked_like_plain_ones() -> None:
    secret = ("api-migrations:databaseUrl", "api-migrations:apiSecrets")
    with pytest.raises(ConfigError) as caught:
        staging({"api-migrations:apiSecrets": '{"bad-name": "x"}'}, secret_keys=secret)
    assert str(caught.value) == "api-migrations:apiSecrets: 'bad-name' is not an environment variable name"
    with pytest.raises(ConfigError) as caught:
        staging(
            {
                "api-migrations:apiEnv": '{"B": "1", "A": "2", "C": "3"}',
                "api-migrations:apiSecrets": '{"A": "x", "B": "y"}',
            },
            secret_keys=secret,
        )
    assert str(caught.value) == "api-migrations:apiEnv and api-migrations:apiSecrets both set A, B"


def test_deadlines_in_the_job_come_from_migration_timeout() -> None:
    """Item 8: the migrator's waits and the deadlines move together with one setting."""
    for timeout, expected in (("45m", 2700), ("2h", 7200)):
        variables = job_vars(staging({"api-migrations:migrationTimeout": timeout}))
        waits = Deadlines(expected, 2, 1)
        assert seconds(variables["migrator_statement_timeout"]) == expected
        assert seconds(json.loads(variables["migrator_args"])[3]) == waits.lock_wait
        assert seconds(variables["healthy_deadline"]) == waits.healthy_deadline
        assert seconds(variables["progress_deadline"]) == waits.progress_deadline


def test_refresh_on_every_operation() -> None:
    """Item 9: the engine reads Nomad before every update (Pulumi.yaml options.refresh)."""
    assert yaml.safe_load((REPO / "Pulumi.yaml").read_text())["options"] == {"refresh": "always"}


def test_a_reverted_deployment_fails_up_and_warns_in_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 9: Nomad runs another image than the one submitted: say so instead of succeeding."""
    old = "us-central1-docker.pkg.dev/e2b-staging/db-migrator/db-migrator@sha256:" + "0" * 64
    with pytest.raises(DeploymentReverted, match="failed and Nomad reverted it"):
        staging(recorder=Recorder(nomad_runs=old))
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    staging(recorder=Recorder(nomad_runs=old), preview=True)
    new = staging().exports["migratorImage"]
    assert [w for w in warnings if "reverted" in w] == [
        f"Nomad job api-id runs the db-migrator image {old}, not {new}: its last deployment"
        " failed and Nomad reverted it, or the job was changed outside this stack"
        " (`nomad job history api` shows which). Fix the cause and run"
        " `pulumi up` with the change, or submit the same version again with"
        " `pulumi up --replace <URN of the nomad:index/job:Job>` (`pulumi stack --show-urns`)."
    ]
    assert staging().exports["apiJobId"] == "api-id"


def test_job_waits_for_the_registry_read_access() -> None:
    """Item 11: the first allocation must not pull before the reader binding exists."""
    run = staging()
    job = run.recorder.one(JOB)
    depends = {getattr(d, "_name", None) for d in job.options.depends_on or []}  # type: ignore[union-attr]
    assert run.recorder.one(READER).name in depends


def test_job_waits_for_the_variable_its_tasks_read() -> None:
    """The prestart task reads the database URL from the Variable: it must exist before."""
    run = staging()
    job = run.recorder.one(JOB)
    depends = {getattr(d, "_name", None) for d in job.options.depends_on or []}  # type: ignore[union-attr]
    assert run.recorder.one("nomad:index/variable:Variable").name in depends


NOT_A_DIGEST = [
    "registry.example/api:latest",
    "api:latest",
    "registry.example:5000/api",
    "registry.example:5000/team/api",
    "registry.example/api:1.4.2",
    "registry.example:5000/api:main",
    "registry.example/api@sha256:" + "ab" * 31,  # a digest is 64 hexadecimal digits
    "registry.example/api@sha256:" + "AB" * 32,
    "registry.example/api@sha512:" + "ab" * 64,
]


@pytest.mark.parametrize("image", NOT_A_DIGEST)
def test_an_api_image_not_pinned_by_digest_is_refused(image: str) -> None:
    """Item 14: Nomad redeploys only when the job changes, so a new image pushed under any tag
    (not only latest) never ships."""
    with pytest.raises(ConfigError) as caught:
        staging({"api-migrations:apiImage": image})
    assert str(caught.value) == (
        f"api-migrations:apiImage {image!r} is not pinned by digest: Nomad deploys only when the job"
        " changes, so an image pushed again under the same tag is never deployed. Set it to the"
        " image's digest reference (name@sha256:...), or set api-migrations:allowMutableApiImage"
        " to true to deploy a tag anyway"
    )


@pytest.mark.parametrize("image", NOT_A_DIGEST)
def test_a_stack_that_allows_mutable_api_images_is_warned(monkeypatch: pytest.MonkeyPatch, image: str) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    run = staging({"api-migrations:apiImage": image, "api-migrations:allowMutableApiImage": "true"})
    assert job_vars(run)["api_image"] == image
    assert warnings == [
        f"api-migrations:apiImage {image!r} is not pinned by digest: an image pushed again under the same"
        " tag is never deployed (api-migrations:allowMutableApiImage is true)"
    ]


@pytest.mark.parametrize("image", [API_DIGEST, "registry.example:5000/api:1.4.2@sha256:" + "0123456789" * 6 + "abcd"])
def test_an_api_image_pinned_by_digest_is_deployed_without_a_word(monkeypatch: pytest.MonkeyPatch, image: str) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warnings.append(message))
    for allowed in ("false", "true"):
        run = staging({"api-migrations:apiImage": image, "api-migrations:allowMutableApiImage": allowed})
        assert job_vars(run)["api_image"] == image
    assert warnings == []


def test_only_the_dev_stack_file_allows_mutable_api_images() -> None:
    """The dev stack keeps working with a tag set by hand; staging and prod pin by digest."""
    allowed = {
        path.name: yaml.safe_load(path.read_text())["config"].get("api-migrations:allowMutableApiImage", False)
        for path in sorted(REPO.glob("Pulumi.*.yaml"))
    }
    assert allowed == {"Pulumi.dev.yaml": True, "Pulumi.prod.yaml": False, "Pulumi.staging.yaml": False}
    assert default("allowMutableApiImage") is False


def test_status_outputs_come_from_the_status_resource() -> None:
    run = staging(
        {"api-migrations:reportMigrations": "true", "api-migrations:databaseUrl": "postgresql://x@127.0.0.1:1/x"}
    )
    status = run.recorder.one("pulumi-python:dynamic:Resource", "migration-status")
    assert status.inputs["migrations_hash"] == content_hash(REPO)
    assert status.inputs["migrator_image"] == run.exports["migratorImage"], "it waits for this image's run"
    assert status.inputs["wait_seconds"] == Deadlines(3600, 2, 1).pulumi_timeout
    assert not status.options.depends_on, "beside the job, not after it: a failed deployment must not skip it"
    assert status.options.additional_secret_outputs == ["database_url"], "the engine stores the URL encrypted"
    assert status.inputs["versions"] == sorted(
        int(p.name.split("_", 1)[0]) for p in (REPO / "migrations").glob("*.sql")
    )
    assert run.exports["appliedMigrations"] == APPLIED
    assert run.exports["latestMigration"] == APPLIED[-1]
    assert run.exports["pendingMigrations"] == []


def test_database_url_never_in_plain_text() -> None:
    run = staging({"api-migrations:reportMigrations": "true"})
    plain = run.plain_text() + repr(run.exports)
    assert PASSWORD not in plain
    assert "db.internal.example" not in plain
    variable = run.recorder.one("nomad:index/variable:Variable").inputs
    assert PASSWORD in variable["itemsWo"]["value"]  # there, but only as a secret
    job = run.recorder.one(JOB).inputs
    assert PASSWORD not in job["jobspec"] + repr(job["hcl2"])


# What the operator reads when a setting is wrong: the key, the rule and the value, on one line.
BAD_CONFIG: list[tuple[dict[str, str | None], str]] = [
    (
        {"api-migrations:databaseUrl": None},
        "api-migrations:databaseUrl is required: set it with `pulumi config set --secret databaseUrl <url>`",
    ),
    (
        {"api-migrations:registry": "not a registry!"},
        "api-migrations:registry must be 'artifact-registry' or a registry host such as localhost:5000,"
        " got 'not a registry!'",
    ),
    (
        {"api-migrations:repository": "Bad Repo"},
        "api-migrations:repository must be an Artifact Registry repository id, got 'Bad Repo'",
    ),
    (
        {"api-migrations:existingRepository": "Not_An_Id"},
        "api-migrations:existingRepository must be an Artifact Registry repository id, got 'Not_An_Id'",
    ),
    ({"api-migrations:apiImage": None}, "api-migrations:apiImage is required: the API's container image"),
    ({"api-migrations:apiCount": "three"}, "api-migrations:apiCount must be a whole number, got 'three'"),
    ({"api-migrations:apiCount": "0"}, "api-migrations:apiCount must be between 1 and 100, got 0"),
    ({"api-migrations:apiPort": "65536"}, "api-migrations:apiPort must be between 1 and 65535, got 65536"),
    ({"api-migrations:reportMigrations": "yes"}, "api-migrations:reportMigrations must be true or false, got 'yes'"),
    (
        {"api-migrations:apiDistinctHosts": "maybe"},
        "api-migrations:apiDistinctHosts must be true or false, got 'maybe'",
    ),
    ({"api-migrations:allowDown": "1"}, "api-migrations:allowDown must be true or false, got '1'"),
    ({"gcp:region": None}, "gcp:project and gcp:region are required when api-migrations:registry is artifact-registry"),
    (
        {"gcp:project": None},
        "gcp:project and gcp:region are required when api-migrations:registry is artifact-registry",
    ),
    (
        {"api-migrations:apiEnv": '{"bad-name": "x"}'},
        "api-migrations:apiEnv: 'bad-name' is not an environment variable name",
    ),
    (
        {"api-migrations:apiEnv": '{"POSTGRES_CONNECTION_STRING": "x"}'},
        "api-migrations:apiEnv: POSTGRES_CONNECTION_STRING is set from databaseUrl, do not set it here",
    ),
    (
        {"api-migrations:apiEnv": '{"database_url": "x"}'},
        "api-migrations:apiEnv: database_url is set from databaseUrl, do not set it here",
    ),
    (
        {"api-migrations:apiEnv": '{"NESTED": {"a": 1}}'},
        "api-migrations:apiEnv.NESTED must be a string, number or boolean",
    ),
    ({"api-migrations:apiEnv": '["A=1"]'}, "api-migrations:apiEnv must be a map of NAME: value, got a list"),
    (
        {"api-migrations:apiEnv": "A=1"},
        "api-migrations:apiEnv must be a YAML map in the stack file, not a string; got 'A=1'",
    ),
    (
        {"api-migrations:datacenters": "dc1"},
        "api-migrations:datacenters must be a YAML list in the stack file, not a string; got 'dc1'",
    ),
    (
        {"api-migrations:apiArgs": '"--port 80"'},
        "api-migrations:apiArgs must be a non-empty list of strings, got '--port 80'",
    ),
    ({"api-migrations:apiArgs": "[]"}, "api-migrations:apiArgs must be a non-empty list of strings, got []"),
    ({"api-migrations:datacenters": "[]"}, "api-migrations:datacenters must be a non-empty list of strings, got []"),
    (
        {"api-migrations:apiArgs": '["--port", ""]'},
        "api-migrations:apiArgs must be a non-empty list of strings, got ['--port', '']",
    ),
    (
        {"api-migrations:migrationTimeout": "forever"},
        "api-migrations:migrationTimeout: invalid duration 'forever': write it like 500ms, 2s, 90s, 15m or 1h",
    ),
    (
        {"api-migrations:migrationTimeout": "59s"},
        "api-migrations:migrationTimeout must be between 1m and 24h, got '59s'",
    ),
    (
        {"api-migrations:migrationTimeout": "86401s"},
        "api-migrations:migrationTimeout must be between 1m and 24h, got '86401s'",
    ),
    (
        {"api-migrations:migrateTo": "v2"},
        "api-migrations:migrateTo must be `latest` or a migration version (digits), got 'v2'",
    ),
    (
        {"api-migrations:migrateTo": "\u0661\u0662"},
        "api-migrations:migrateTo must be `latest` or a migration version (digits), got '\u0661\u0662'",
    ),
    (
        {"api-migrations:apiSecrets": '{"TOKEN": "x"}'},
        "api-migrations:apiSecrets is stored in plain text: set each value with"
        " `pulumi config set --secret --path 'apiSecrets.NAME' VALUE`",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD_CONFIG)
def test_bad_config_stops_with_one_message_naming_the_key(override: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        staging(override)
    assert str(caught.value) == message


def test_config_limits_are_inclusive() -> None:
    edges = {
        "api-migrations:apiCount": "100",
        "api-migrations:canary": "100",
        "api-migrations:apiPort": "65535",
        "api-migrations:migrationTimeout": "24h",
    }
    variables = job_vars(staging(edges))
    assert (variables["api_count"], variables["canary"], variables["api_port"]) == ("100", "100", "65535")
    assert seconds(variables["migrator_statement_timeout"]) == 86400
    low = job_vars(staging({"api-migrations:apiPort": "1", "api-migrations:migrationTimeout": "1m"}))
    assert low["api_port"] == "1"
    assert seconds(low["migrator_statement_timeout"]) == 60


def test_an_unset_boolean_takes_the_project_default() -> None:
    """reportMigrations decides whether the program declares the status resource."""
    for value, reads in (("true", True), ("false", False), (None, bool(default("reportMigrations")))):
        run = staging({"api-migrations:reportMigrations": value})
        statuses = [r for r in run.recorder.of_type("pulumi-python:dynamic:Resource") if r.name == "migration-status"]
        assert bool(statuses) is reads, value


def test_dev_stack_creates_no_gcp_resource() -> None:
    run = run_program(REPO / "__main__.py", DEV, stack="dev")
    assert not [r for r in run.recorder.resources if r.typ.startswith("gcp:")]
    assert not [c for c in run.recorder.calls if c.startswith("gcp:")]
    image = run.recorder.one(IMAGE).inputs
    assert image["imageName"].startswith("localhost:5000/db-migrator:")
    assert "registry" not in image
    assert run.exports["registryUrl"] == "localhost:5000"


def test_the_migrator_task_moves_the_database_to_migrate_to_within_its_budget() -> None:
    latest = json.loads(job_vars(staging())["migrator_args"])
    assert latest == ["migrate-to", "latest", "--lock-timeout", "3600s", "--run-timeout", "3600s"]
    version = sorted(int(p.name.split("_", 1)[0]) for p in (REPO / "migrations").glob("*.sql"))[0]
    run = staging({"api-migrations:migrateTo": str(version), "api-migrations:allowDown": "true"})
    pinned = json.loads(job_vars(run)["migrator_args"])
    request = run.recorder.one("pulumi-python:dynamic:Resource", "rollback-request")
    assert request.name == "rollback-request"
    assert request.inputs["migrate_to"] == str(version)
    assert pinned == [
        "migrate-to", str(version), "--lock-timeout", "3600s", "--run-timeout", "3600s",
        "--allow-down", "--rollback-id", "rollback-request-id",
    ]  # fmt: skip
    declared = [r.name for r in staging().recorder.of_type("pulumi-python:dynamic:Resource")]
    assert "rollback-request" not in declared, "no rollback asked for: no request"
