"""The migrator image, built from the real Dockerfile, run against PostgreSQL and pushed.

Needs a Docker engine (``DOCKER_HOST``), a local base image with python3
(``MIGRATOR_TEST_BASE_IMAGE``, made by .ci/run with debootstrap) and a registry to push
to (``TEST_REGISTRY``); .ci/run starts all three and stops them by pid.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.image_content import content_hash, image_files
from migrator.ledger_entries import file_sha256
from tests.support import REPO, query, shipped_migrations, tables, versions
from tools.image_builds import Engine, build, copy_context, docker, run_image

BROKEN = """-- +goose Up
CREATE TABLE broken_half (id int);
INSERT INTO no_such_table VALUES (1);
-- +goose Down
DROP TABLE broken_half;
"""


@pytest.fixture(scope="module")
def image(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = build(engine, copy_context(tmp_path_factory.mktemp("context")))
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_image_metadata(image: str) -> None:
    config = json.loads(docker("inspect", image).stdout)[0]["Config"]
    labels = config["Labels"]
    assert labels["io.e2b.migrations.hash"] == content_hash(REPO) == image.rsplit(":", 1)[1]
    assert labels["io.e2b.migrations.latest"] == str(shipped_migrations()[-1][0])
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python3", "-m", "migrator"]
    assert config["Cmd"] == ["up"]
    assert "GOOSE_MIGRATION_DIR=/app/migrations" in config["Env"]
    assert "MIGRATOR_CHECKSUMS=/app/migrations.sha256" in config["Env"]
    assert not [e for e in config["Env"] if e.startswith(("POSTGRES_CONNECTION_STRING", "GOOSE_DBSTRING"))]


def test_image_holds_exactly_the_hashed_files(image: str) -> None:
    """Beside the bytecode the build compiles from them (see the next test)."""
    find = "cd /app && find migrator migrations -type f -not -path '*/__pycache__/*'"
    listing = docker("run", "--rm", "--entrypoint", "sh", image, "-c", find)
    in_image = sorted(listing.stdout.split())
    hashed = [name for name in image_files(REPO) if name.startswith(("migrator/", "migrations/"))]
    assert in_image == hashed


def test_a_start_compiles_nothing(image: str, dsn: str) -> None:
    """The image runs as a user who cannot write bytecode: every module a run imports comes
    compiled with the image (``python -v`` says where each module's code came from)."""
    result = docker(
        "run", "--rm", "--network", "host", "-e", f"POSTGRES_CONNECTION_STRING={dsn}",
        "--entrypoint", "python3", image, "-v", "-m", "migrator", "up", check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = [line for line in result.stderr.splitlines() if line.startswith("# code object from ")]
    assert any("/app/migrator/__pycache__/parser." in line for line in loaded), loaded
    assert any("/psycopg/__pycache__/" in line for line in loaded), loaded
    assert [line for line in loaded if not line.endswith(".pyc'")] == []


def test_checksum_manifest_matches_the_files(image: str) -> None:
    manifest = docker("run", "--rm", "--entrypoint", "cat", image, "/app/migrations.sha256").stdout
    expected = "".join(f"{file_sha256(path)}  {path.name}\n" for path in sorted(p for _, p in shipped_migrations()))
    assert manifest == expected


def test_runs_every_migration_then_nothing(image: str, dsn: str) -> None:
    shipped = shipped_migrations()
    first = run_image(image, dsn)
    assert first.returncode == 0, first.stderr
    # An empty migration (`create`'s template as written) runs as "EMPTY", as in goose.
    assert [line.split()[1] for line in first.stdout.splitlines() if line.startswith(("OK ", "EMPTY "))] == [
        path.name for _, path in shipped
    ]
    assert versions(dsn) == [0] + [version for version, _ in shipped]
    recorded = query(dsn, "SELECT id, version_id, tstamp FROM _migrations ORDER BY id")
    second = run_image(image, dsn)
    assert second.returncode == 0, second.stderr
    assert f"no migrations to run. current version: {shipped[-1][0]}" in second.stdout
    assert query(dsn, "SELECT id, version_id, tstamp FROM _migrations ORDER BY id") == recorded
    assert query(dsn, "SELECT version_id, sha256 FROM _migrations_ledger WHERE version_id > 0 ORDER BY version_id") == [
        (version, file_sha256(path)) for version, path in shipped
    ]
    assert query(dsn, "SELECT filename FROM _migrations_ledger WHERE version_id = 0") == [("(verified state)",)]


def test_broken_migration_exits_1_with_nothing_half_applied(engine: Engine, tmp_path: Path, dsn: str) -> None:
    shipped = shipped_migrations()
    broken = f"{shipped[-1][0] + 1}_broken.sql"  # newest, so every shipped file runs before it
    context = copy_context(tmp_path / "context")
    (context / "migrations" / broken).write_text(BROKEN)
    tag = build(engine, context)
    try:
        result = run_image(tag, dsn)
    finally:
        docker("rmi", "-f", tag, check=False)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert f"{broken} (up): statement 2 (line 3) failed" in errors[0]
    assert 'relation "no_such_table" does not exist' in errors[0]
    assert versions(dsn) == [0] + [version for version, _ in shipped]
    assert "broken_half" not in tables(dsn)


def test_push_and_resolve_digest(engine: Engine, image: str) -> None:
    docker("push", image)
    repo_digest = [
        d for d in json.loads(docker("inspect", image).stdout)[0]["RepoDigests"] if d.startswith(engine.registry)
    ]
    assert len(repo_digest) == 1
    assert "@sha256:" in repo_digest[0]
    tag = image.rsplit(":", 1)[1]
    request = urllib.request.Request(
        f"http://{engine.registry}/v2/db-migrator/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Docker-Content-Digest"] == repo_digest[0].split("@", 1)[1]
    by_digest = docker("pull", repo_digest[0])
    assert by_digest.returncode == 0


def test_unchanged_content_rebuilds_to_the_same_tag(engine: Engine, image: str, tmp_path: Path) -> None:
    context = copy_context(tmp_path / "again")
    later = time.time() + 7200
    for name in image_files(context):
        os.utime(context / name, (later, later))
    assert build(engine, context) == image


def test_no_secret_or_database_setting_in_image_layers(image: str) -> None:
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "POSTGRES_CONNECTION_STRING" not in history
    assert "GOOSE_DBSTRING" not in history
    assert "password" not in history.lower()
