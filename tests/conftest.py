"""The fixtures: a PostgreSQL server for the session, a fresh database and a migrations
directory per test, and the Docker engine the image tests need; and, under a mutant, the
test order and a time limit per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import MigrationDir, SessionSpy, pgbouncer, unavailable
from tests.support.rehearsal_support import scratch_server
from tools import pgserver
from tools.image_builds import Engine, docker
from tools.mutation import mutation_support


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mutation_support.fastest_first(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with mutation_support.time_limit(item.nodeid):
        return (yield)


def pytest_sessionfinish(session: pytest.Session) -> None:
    mutation_support.report_expiry(session)


@pytest.fixture(scope="session")
def engine() -> Engine:
    base, registry = os.environ.get("MIGRATOR_TEST_BASE_IMAGE"), os.environ.get("TEST_REGISTRY")
    if shutil.which("docker") is None:
        unavailable("the docker client is not installed")
    if not base or not registry:
        unavailable("MIGRATOR_TEST_BASE_IMAGE and TEST_REGISTRY are not set (bash .ci/run sets them)")
    assert base
    assert registry
    if docker("info", check=False, timeout=30).returncode != 0:
        unavailable("no Docker engine answers at DOCKER_HOST")
    return Engine(base, registry)


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


@pytest.fixture(scope="session")
def poolers(pg_admin_dsn: str) -> Iterator[dict[str, pgbouncer.Pooler]]:
    """PgBouncer in front of the test server, in session and in transaction mode."""
    started: dict[str, pgbouncer.Pooler] = {}
    try:
        for mode in ("session", "transaction"):
            started[mode] = pgbouncer.start(pg_admin_dsn, mode)
    except pgserver.ServerUnavailable as exc:
        for pooler in started.values():
            pooler.stop()
        unavailable(str(exc))
    try:
        yield started
    finally:
        for pooler in started.values():
            pooler.stop()


@pytest.fixture
def session_pooled(dsn: str, poolers: dict[str, pgbouncer.Pooler]) -> str:
    """The test's database through PgBouncer in session mode (Supabase's port 5432)."""
    return poolers["session"].dsn(dsn)


@pytest.fixture
def transaction_pooled(dsn: str, poolers: dict[str, pgbouncer.Pooler]) -> str:
    """The test's database through PgBouncer in transaction mode (Supabase's port 6543)."""
    return poolers["transaction"].dsn(dsn)


@pytest.fixture
def dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with pgserver.fresh_database(pg_admin_dsn) as database:
        yield database


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit session on the test's database (as the migrator needs one)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def scratch(dsn: str) -> str:
    """A scratch server of the test's own: a role that may create databases on the test server."""
    return scratch_server(dsn)


@pytest.fixture
def other_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A second fresh database, for a run to compare with (goose's, say)."""
    with pgserver.fresh_database(pg_admin_dsn) as database:
        yield database


@pytest.fixture
def migrations(tmp_path: Path) -> MigrationDir:
    directory = tmp_path / "migrations"
    directory.mkdir()
    return MigrationDir(directory)


@pytest.fixture
def session_spy(monkeypatch: pytest.MonkeyPatch) -> SessionSpy:
    return SessionSpy(monkeypatch)
