"""The Pulumi program under Pulumi's mocks: what each stack declares, and what it never does."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import hcl2
import pytest

from infra.api_job import DATABASE_VARIABLE_PATH, JOBSPEC
from infra.config import ConfigError
from migrator.content import IMAGE_FILES, content_hash, image_files
from tests.conftest import REPO
from tests.pulumi_harness import ACCESS_TOKEN, APPLIED, Run, run_program

PASSWORD = "pW-9f2c81e0-secret"
DATABASE_URL = f"postgresql://api:{PASSWORD}@10.1.2.3:5432/api?sslmode=require"
STAGING = {
    "gcp:project": "e2b-staging",
    "gcp:region": "us-central1",
    "api-migrations:registry": "artifact-registry",
    "api-migrations:registryReaderServiceAccount": "nomad@e2b-staging.iam.gserviceaccount.com",
    "api-migrations:apiImage": "us-central1-docker.pkg.dev/e2b-staging/e2b-orchestration/api:1.2.3",
    "api-migrations:apiCount": "2",
    "api-migrations:datacenters": '["us-central1-a"]',
    "api-migrations:databaseUrl": DATABASE_URL,
    # The status resource is mocked; reading the database is tested against a real one.
    "api-migrations:reportMigrations": "false",
}
DEV = {
    "api-migrations:registry": "localhost:5000",
    "api-migrations:apiImage": "localhost:5000/api:dev",
    "api-migrations:databaseUrl": DATABASE_URL,
    "api-migrations:reportMigrations": "false",
}


def copy_project(destination: Path) -> Path:
    """The image's files and the program, so content can be changed without touching the repo."""
    for name in [*image_files(REPO), "__main__.py"]:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination / "__main__.py"


def staging(overrides: dict[str, str] | None = None, program: Path = REPO / "__main__.py") -> Run:
    return run_program(program, {**STAGING, **(overrides or {})})


def declared(run: Run) -> dict[tuple[str, str], dict[str, object]]:
    """Resource inputs by type and name (mocks may register them in any order)."""
    return {(r.typ, r.name): r.inputs for r in run.recorder.resources}


def job_vars(run: Run) -> dict[str, str]:
    return dict(run.recorder.one("nomad:index/job:Job").inputs["hcl2"]["vars"])


def test_staging_declares_repository_image_and_job() -> None:
    run = staging()
    repository = run.recorder.one("gcp:artifactregistry/repository:Repository").inputs
    assert repository["format"] == "DOCKER"
    assert repository["dockerConfig"] == {"immutableTags": True}
    assert repository["repositoryId"] == "e2b-orchestration" and repository["location"] == "us-central1"
    actions = {p["id"]: p["action"] for p in repository["cleanupPolicies"]}
    assert actions == {"keep-recent": "KEEP", "delete-old": "DELETE"}
    reader = run.recorder.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember").inputs
    assert reader["role"] == "roles/artifactregistry.reader"
    assert reader["member"] == "serviceAccount:nomad@e2b-staging.iam.gserviceaccount.com"

    image = run.recorder.one("docker:index/image:Image")
    tag = content_hash(REPO)
    assert image.inputs["imageName"] == f"us-central1-docker.pkg.dev/e2b-staging/e2b-orchestration/db-migrator:{tag}"
    build = image.inputs["build"]
    assert build["platform"] == "linux/amd64"
    assert Path(build["context"]) == REPO and Path(build["dockerfile"]) == REPO / "migrator" / "Dockerfile"
    assert build["args"]["MIGRATIONS_HASH"] == tag
    assert image.inputs["registry"]["value"]["password"] == ACCESS_TOKEN  # a secret, from the GCP provider
    assert "gcp:organizations/getClientConfig:getClientConfig" in run.recorder.calls

    job = run.recorder.one("nomad:index/job:Job").inputs
    assert job["detach"] is False
    assert job["jobspec"] == JOBSPEC.read_text()
    assert job_vars(run)["migrator_image"] == image.outputs["repoDigest"] == run.exports["migratorImage"]
    assert job_vars(run)["api_count"] == "2" and job_vars(run)["datacenters"] == '["us-central1-a"]'
    variable = run.recorder.one("nomad:index/variable:Variable").inputs
    assert variable["path"] == DATABASE_VARIABLE_PATH and variable["itemsWoVersion"] == 1

    assert run.exports["migrationsHash"] == tag
    assert run.exports["registryUrl"] == "us-central1-docker.pkg.dev/e2b-staging/e2b-orchestration"
    assert run.exports["apiJobId"] == "api-id"


def test_status_outputs_come_from_the_status_resource() -> None:
    run = staging(
        {"api-migrations:reportMigrations": "true", "api-migrations:databaseUrl": "postgresql://x@127.0.0.1:1/x"}
    )
    status = run.recorder.one("pulumi-python:dynamic:Resource")
    assert status.inputs["job_id"] == "api-id" and status.inputs["migrations_hash"] == content_hash(REPO)
    assert run.exports["appliedMigrations"] == APPLIED and run.exports["latestMigration"] == APPLIED[-1]
    assert run.exports["pendingMigrations"] == []  # unreachable database: a warning, not a crash


def test_same_content_same_inputs_and_one_byte_changes_the_tag(tmp_path: Path) -> None:
    program = copy_project(tmp_path / "a")
    first, second = staging(program=program), staging(program=program)
    assert declared(first) == declared(second)

    later = time.time() + 3600
    for name in image_files(tmp_path / "a"):
        os.utime(tmp_path / "a" / name, (later, later))
    touched = staging(program=program)
    assert job_vars(touched) == job_vars(first)

    migration = next((tmp_path / "a" / "migrations").glob("*.sql"))
    migration.write_bytes(migration.read_bytes() + b"\n")
    changed = staging(program=program)
    old_image = first.recorder.one("docker:index/image:Image").inputs["imageName"]
    new_image = changed.recorder.one("docker:index/image:Image").inputs["imageName"]
    assert old_image.rsplit(":", 1)[1] != new_image.rsplit(":", 1)[1]
    assert job_vars(changed)["migrator_image"] != job_vars(first)["migrator_image"]


def test_hash_covers_exactly_the_dockerignore_allow_list() -> None:
    allowed = [line[1:] for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert sorted(allowed) == sorted(IMAGE_FILES)
    assert "migrator/Dockerfile" in image_files(REPO) and "migrator/cli.py" in image_files(REPO)


def test_database_url_never_in_plain_text() -> None:
    run = staging({"api-migrations:reportMigrations": "true"})
    plain = run.plain_text() + repr(run.exports)
    assert PASSWORD not in plain and "10.1.2.3" not in plain
    variable = run.recorder.one("nomad:index/variable:Variable").inputs
    assert PASSWORD in variable["itemsWo"]["value"]  # there, but only as a secret
    job = run.recorder.one("nomad:index/job:Job").inputs
    assert PASSWORD not in job["jobspec"] + repr(job["hcl2"])


def test_jobspec_is_hcl2_with_the_prestart_migrator() -> None:
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    spec = hcl2.loads(JOBSPEC.read_text(), serialization_options=options)
    variables = {name for block in spec["variable"] for name in block}
    assert {"api_image", "migrator_image", "api_count", "api_port", "node_pool", "datacenters"} <= variables
    assert set(job_vars(staging())) <= variables
    group = spec["job"][0]["api"]["group"][0]["api-service"]
    tasks = {name: body for task in group["task"] for name, body in task.items()}
    assert set(tasks) == {"db-migrator", "start"}
    migrator = tasks["db-migrator"]
    assert migrator["lifecycle"][0] == {"hook": "prestart", "sidecar": False}
    assert migrator["config"][0]["image"] == "${var.migrator_image}"
    assert migrator["restart"][0]["mode"] == "fail"
    template = migrator["template"][0]
    assert template["env"] is True
    data = template["data"]
    assert "nomadVarExists" in data and "nomadVar" in data and "database_url" in data
    assert data.index("nomadVarExists") < data.index('nomadVar "')
    assert group["update"][0]["auto_revert"] is True and group["update"][0]["canary"] == 1
    assert tasks["start"]["config"][0]["image"] == "${var.api_image}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"api-migrations:databaseUrl": None}, "api-migrations:databaseUrl is required"),
        ({"api-migrations:registry": "not a registry!"}, "api-migrations:registry must be"),
        ({"api-migrations:apiCount": "three"}, "api-migrations:apiCount must be a whole number, got 'three'"),
        ({"api-migrations:apiPort": "70000"}, "api-migrations:apiPort must be between 1 and 65535"),
        ({"api-migrations:apiImage": None}, "api-migrations:apiImage is required"),
        ({"api-migrations:reportMigrations": "yes"}, "api-migrations:reportMigrations must be true or false"),
        ({"gcp:region": None}, "gcp:project and gcp:region are required"),
    ],
)
def test_bad_config_stops_with_one_message_naming_the_key(override: dict[str, str | None], message: str) -> None:
    config = {k: v for k, v in {**STAGING, **override}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        run_program(REPO / "__main__.py", config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_dev_stack_creates_no_gcp_resource() -> None:
    run = run_program(REPO / "__main__.py", DEV, stack="dev")
    assert not [r for r in run.recorder.resources if r.typ.startswith("gcp:")]
    assert not [c for c in run.recorder.calls if c.startswith("gcp:")]
    image = run.recorder.one("docker:index/image:Image").inputs
    assert image["imageName"].startswith("localhost:5000/db-migrator:") and "registry" not in image
    assert run.exports["registryUrl"] == "localhost:5000"
