"""The local dev stack (dev/, `make dev`) and the Makefile's verbs, as far as this machine allows.

Nomad never runs here, and no image can be pulled: the API stand-in is built on the local base
image, and dev/up.sh's services part runs against the test database and registry.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import conninfo

from tests.support import REPO, unavailable
from tests.support.migrator_process import run_migrator
from tools.image_builds import Engine, docker

STAND_IN = REPO / "dev" / "api-stand-in"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_http(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            get(url)
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def stand_in(engine: Engine) -> Iterator[str]:
    tag = f"api-stand-in-test:{uuid.uuid4().hex[:8]}"
    docker("build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={engine.base_image}", str(STAND_IN))
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_api_stand_in_answers_health_and_stops_on_sigterm(stand_in: str) -> None:
    port = free_port()
    container = docker("run", "-d", "--network", "host", "-e", f"PORT={port}", stand_in).stdout.strip()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        assert get(f"http://127.0.0.1:{port}/health") == (200, {"status": "ok"})
        assert get(f"http://127.0.0.1:{port}/v1/sandboxes")[0] == 404
        # Python as PID 1 ignores SIGTERM unless it handles it; then `docker stop` kills (137).
        docker("stop", "--time", "60", container)
        state = json.loads(docker("inspect", container).stdout)[0]["State"]
        assert (state["Running"], state["ExitCode"]) == (False, 0)
    finally:
        docker("rm", "-f", container, check=False)


def run_script(script: str, state: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Nothing from the caller's Pulumi or Nomad settings: the scripts choose their own.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "NOMAD_", "DEV_"))}
    return subprocess.run(
        ["bash", str(REPO / "dev" / script), *args],
        env={**inherited, "DEV_STATE": str(state), **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def manifest_digest(registry: str, repository: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.headers["Docker-Content-Digest"])


def test_services_only_pushes_the_stand_in_by_digest_and_keeps_the_url_private(
    engine: Engine, dsn: str, tmp_path: Path
) -> None:
    state = tmp_path / "dev-state"
    given = {"DEV_DATABASE_URL": dsn, "DEV_REGISTRY": engine.registry, "DEV_BASE_IMAGE": engine.base_image}
    up = run_script("up.sh", state, "--services-only", env=given)
    assert up.returncode == 0, up.stdout + up.stderr
    pushed = f"{engine.registry}/api@{manifest_digest(engine.registry, 'api', 'dev')}"
    assert (state / "api-image").read_text().strip() == pushed
    assert f"API stand-in: {pushed}" in up.stdout
    url_file = state / "database-url"
    assert url_file.read_text() == dsn
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert dsn not in up.stdout + up.stderr
    assert not list(state.glob("*.cid"))
    assert not (state / "nomad.pid").exists()
    assert not (state / "scratch-url").exists(), (
        "a database of yours: no scratch server unless DEV_SCRATCH_URL names one"
    )

    scratch = conninfo.make_conninfo(dsn, dbname="postgres")
    again = run_script("up.sh", state, "--services-only", env={**given, "DEV_SCRATCH_URL": scratch})
    assert again.returncode == 0, again.stderr
    assert f"registry: {engine.registry} already answers" in again.stdout
    assert (state / "scratch-url").read_text() == scratch
    assert stat.S_IMODE((state / "scratch-url").stat().st_mode) == 0o600
    assert scratch not in again.stdout + again.stderr

    down = run_script("down.sh", state, env={})
    assert down.returncode == 0, down.stdout + down.stderr
    assert not url_file.exists()
    assert not (state / "scratch-url").exists()
    assert not (state / "api-image").exists()


def test_services_only_refuses_a_database_that_does_not_answer(engine: Engine, tmp_path: Path) -> None:
    secret = "Sup3rS3cretDevPassword"
    url = f"postgresql://api:{secret}@127.0.0.1:{free_port()}/api"
    up = run_script("up.sh", tmp_path / "dev-state", "--services-only", env={"DEV_DATABASE_URL": url})
    assert up.returncode == 1
    assert "the database does not accept connections" in up.stderr
    assert "make dev-down stops it" in up.stderr
    assert secret not in up.stdout + up.stderr


def test_up_names_the_missing_tool_before_starting_anything(engine: Engine, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # only what the script needs up to its checks: no nomad, no pulumi
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "docker"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    state = tmp_path / "dev-state"
    up = run_script("up.sh", state, env={"PATH": str(bin_dir)})
    assert up.returncode == 1
    assert "dev/up.sh: nomad is not installed: https://developer.hashicorp.com/nomad/install" in up.stderr
    assert not state.exists()


def test_dev_pulumi_uses_the_local_backend_and_only_the_dev_agent(tmp_path: Path) -> None:
    """dev/pulumi runs `pulumi` with the dev stack's settings; `env` stands in to show them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env_program = shutil.which("env")
    assert env_program is not None
    (bin_dir / "pulumi").symlink_to(env_program)
    state = tmp_path / "dev-state"
    result = subprocess.run(
        [str(REPO / "dev" / "pulumi")],
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "DEV_STATE": str(state),
            "NOMAD_ADDR": "https://nomad.prod.example:4646",
            "NOMAD_TOKEN": "prod-token",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert seen["PULUMI_BACKEND_URL"] == f"file://{state}/pulumi"
    assert seen["PULUMI_CONFIG_PASSPHRASE_FILE"] == f"{state}/passphrase"
    assert seen["NOMAD_ADDR"] == "http://127.0.0.1:4646"
    assert "NOMAD_TOKEN" not in seen


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        unavailable("make is not installed")
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("verb", "command"),
    [
        (["preview", "ENV=staging"], "pulumi preview --stack staging"),
        (["up", "ENV=prod"], "pulumi up --stack prod"),
        (["status", "ENV=staging"], "pulumi stack output --stack staging"),
        (["up", "ENV=dev"], "dev/pulumi up --stack dev"),
        (["dev"], "dev/up.sh"),
        (["dev-down"], "dev/down.sh"),
        (["test"], "bash .ci/test"),
    ],
)
def test_make_verbs_are_thin_calls_of_the_real_commands(verb: list[str], command: str) -> None:
    dry = make("-n", *verb)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == command
    program = command.split(maxsplit=1)[0]
    assert "/" not in program or os.access(REPO / program, os.X_OK), f"{program} is not executable"


def test_make_refuses_an_unknown_env_and_points_old_verbs_to_new_ones() -> None:
    for verb in ("preview", "up", "status"):
        refused = make("-n", verb, "ENV=production")
        assert refused.returncode != 0
        assert "ENV must be staging, prod or dev, got 'production'" in refused.stderr
    old = make("deploy-api", "ENV=prod")
    assert old.returncode != 0
    assert "now: make up ENV=prod" in old.stderr


def test_make_migration_creates_a_migration_the_migrator_accepts(tmp_path: Path) -> None:
    created = make("migration", "NAME=add_widgets", env={"GOOSE_MIGRATION_DIR": str(tmp_path)})
    assert created.returncode == 0, created.stderr
    [path] = tmp_path.glob("*_add_widgets.sql")
    assert path.name.split("_", 1)[0].isdigit()
    assert make("migration").returncode != 0
    validated = run_migrator("validate", directory=tmp_path)
    assert validated.returncode == 0, validated.stderr
