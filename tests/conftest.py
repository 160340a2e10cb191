from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests import mutation_support, pgserver

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Advisory locks held in the test's own database: pg_locks lists every database's, and an
# earlier test's process may still hold one elsewhere.
ADVISORY_LOCKS_HERE = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def unavailable(reason: str) -> None:
    """A missing tool skips a test on a workstation and fails it in CI."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Engine:
    """A Docker engine with a local base image with python3 and a registry to push to (.ci/run starts them)."""

    base_image: str
    registry: str


@pytest.fixture(scope="session")
def engine() -> Engine:
    base, registry = os.environ.get("MIGRATOR_TEST_BASE_IMAGE"), os.environ.get("TEST_REGISTRY")
    if shutil.which("docker") is None:
        unavailable("the docker client is not installed")
    if not base or not registry:
        unavailable("MIGRATOR_TEST_BASE_IMAGE and TEST_REGISTRY are not set (bash .ci/run sets them)")
    assert base and registry
    if docker("info", check=False, timeout=30).returncode != 0:
        unavailable("no Docker engine answers at DOCKER_HOST")
    return Engine(base, registry)


def shipped_migrations() -> list[tuple[int, Path]]:
    """Whatever ``migrations/`` holds, as (version, path) in version order.

    Tests treat the shipped directory as data: a newly created migration must not turn them red.
    """
    return sorted((int(path.name.split("_", 1)[0]), path) for path in (REPO / "migrations").glob("*.sql"))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    try:
        server = pgserver.start()
    except pgserver.ServerUnavailable as exc:
        unavailable(str(exc))
        return
    try:
        yield server.admin_dsn
    finally:
        server.stop()


@pytest.fixture
def dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with pgserver.fresh_database(pg_admin_dsn) as database:
        yield database


@dataclass
class MigrationDir:
    path: Path

    def add(self, filename: str, body: str) -> Path:
        target = self.path / filename
        target.write_text(body)
        return target


@pytest.fixture
def migrations(tmp_path: Path) -> MigrationDir:
    directory = tmp_path / "migrations"
    directory.mkdir()
    return MigrationDir(directory)


def run_migrator(
    *args: str,
    dsn: str | None = None,
    directory: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m migrator`` as a separate process, as Nomad runs it."""
    child_env = {k: v for k, v in os.environ.items() if k not in {"POSTGRES_CONNECTION_STRING", "GOOSE_DBSTRING"}}
    child_env["PYTHONPATH"] = str(REPO)
    if dsn is not None:
        child_env["POSTGRES_CONNECTION_STRING"] = dsn
    if directory is not None:
        child_env["GOOSE_MIGRATION_DIR"] = str(directory)
    child_env.update(env or {})
    with mutation_support.recorded_child(child_env):
        return subprocess.run(
            [sys.executable, *mutation_support.child_command(), *args],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )


def query(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def tables(dsn: str) -> set[str]:
    rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r[0]) for r in rows}


def versions(dsn: str, table: str = "_migrations") -> list[int]:
    return [int(r[0]) for r in query(dsn, f"SELECT version_id FROM {table} ORDER BY id")]  # type: ignore[call-overload]
