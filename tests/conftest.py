"""The fixtures every directory shares: a PostgreSQL server for the session, a fresh database
and a migrations directory per test; and, under a mutant, the test order and a time limit per
test. A directory's own conftest holds what only its tests need (the poolers, the Docker engine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import MigrationDir, SessionSpy, unavailable
from tests.support.rehearsal_support import scratch_server
from tools import pgserver
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
