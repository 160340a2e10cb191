"""PgBouncer in front of the session's PostgreSQL, in session and transaction mode, for the
pooler tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import pgbouncer, unavailable
from tools import pgserver


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
