"""What the tests share: where the repository is, what CI demands, the database helpers and
a test's migrations directory. Fixtures live in conftest.py; this is plain code, imported
(pytest advises against importing from conftest)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pulumi
import pytest
from psycopg import conninfo, sql

import tools
from infra.image_content import image_files
from migrator import dsn as migrator_dsn
from migrator.errors import Interrupted

REPO = tools.REPO
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Advisory locks held in the test's own database: pg_locks lists every database's, and an
# earlier test's process may still hold one elsewhere.
ADVISORY_LOCKS_HERE = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

# write_audit() writes a row to audit: a read that calls it shows whether the session can write.
WRITING_FUNCTION = (
    "CREATE TABLE audit (n int);"
    " CREATE FUNCTION write_audit() RETURNS bigint LANGUAGE plpgsql VOLATILE AS"
    " $$ BEGIN INSERT INTO audit VALUES (1); RETURN 1; END $$;"
)


def rollback_done(rollback_id: str, target: int, applied_since: str) -> str:
    """A pattern of what a run (or a preview) says of a rollback that already ran once."""
    return (
        rf"rollback {re.escape(rollback_id)} to version {target} already completed at"
        rf" \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC; version\(s\) {re.escape(applied_since)} were applied since,"
        r" and a rollback runs once: nothing rolled back"
    )


def unavailable(reason: str) -> None:
    """A missing tool skips a test on a workstation and fails it in CI."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def shipped_migrations() -> list[tuple[int, Path]]:
    """Whatever ``migrations/`` holds, as (version, path) in version order.

    Tests treat the shipped directory as data: a newly created migration must not turn them red.
    """
    return sorted((int(path.name.split("_", 1)[0]), path) for path in (REPO / "migrations").glob("*.sql"))


@dataclass
class MigrationDir:
    path: Path

    def add(self, filename: str, body: str) -> Path:
        target = self.path / filename
        target.write_text(body)
        return target


def modules_after(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded once it ran ``statement`` in the checkout."""
    loaded = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return loaded.stdout.split()


def table_file(name: str) -> str:
    """A migration that creates table ``name`` and drops it on the way down."""
    return f"-- +goose Up\nCREATE TABLE {name} (id int);\n-- +goose Down\nDROP TABLE {name};\n"


def query(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def refuse_inserts(dsn: str, table: str, condition: str, message: str) -> None:
    """A trigger that fails every INSERT into ``table`` whose row meets ``condition`` (on NEW)
    with ``message``: a write the migrator makes that the test wants to fail."""
    query(
        dsn,
        f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF {condition} THEN RAISE EXCEPTION '{message}'; END IF; RETURN NEW; END $$;"
        f" CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()",
    )


def server_warnings(conn: psycopg.Connection) -> list[str | None]:
    """The WARNING messages the server sends this session from now on, as they come."""
    warnings: list[str | None] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING":
            warnings.append(diag.message_primary)

    conn.add_notice_handler(keep)
    return warnings


def tables(dsn: str) -> set[str]:
    rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r[0]) for r in rows}


def versions(dsn: str, table: str = "_migrations") -> list[int]:
    return [int(r[0]) for r in query(dsn, f"SELECT version_id FROM {table} ORDER BY id")]  # type: ignore[call-overload]


def server_role(dsn: str, name: str, password: str, *grants: str) -> None:
    """A login role ``name`` with ``password``, and ``grants`` (SQL with ``{}`` for the role).
    Roles belong to the server, which concurrent runs of a test share (mutation testing): two
    may create it at once, so it is created once and kept, its password set each time."""
    role = sql.Identifier(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
        for grant in grants:
            conn.execute(sql.SQL(grant).format(role))


def login_role(dsn: str, name: str, password: str, *grants: str) -> str:
    """A DSN that logs in to the test's database as a role of its own: the name carries the
    database's, so no other test's grants reach it."""
    role = f"{name}_{conninfo.conninfo_to_dict(dsn)['dbname']}"
    server_role(dsn, role, password, *grants)
    return conninfo.make_conninfo(dsn, user=role, password=password)


def wait_until(condition: str, dsn: str, seconds: float = 30) -> None:
    """Poll ``condition`` (a query whose first column is true when met) on its own session."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(condition).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {condition}")


def interrupted_during(dsn: str, running: str, action: Callable[[], object]) -> Interrupted:
    """What ``action`` raises when Ctrl-C comes while a session of this database runs a query
    ``LIKE running``: the migrator's Interrupted, which the caller then reads."""

    def interrupt() -> None:
        wait_until(
            f"SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '{running}' AND datname = current_database()"
            " AND pid <> pg_backend_pid()",
            dsn,
        )
        os.kill(os.getpid(), signal.SIGINT)  # Python raises KeyboardInterrupt in the main thread

    # Python's own Ctrl-C handler: a runner may ignore SIGINT (mutmut's fork server does).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.raises(Interrupted) as stopped:
            action()
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    return stopped.value


def copy_project(destination: Path) -> Path:
    """The image's files and the program, so content can be changed without touching the repo."""
    for name in [*image_files(REPO), "__main__.py"]:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination / "__main__.py"


@dataclass
class SessionSpy:
    """The database sessions a module opens through ``connect``, each read on the session
    itself: whether its transactions are read-only and the connect timeout libpq was given."""

    monkeypatch: pytest.MonkeyPatch
    sessions: list[dict[str, str | None]] = field(default_factory=list)

    def watch(self, module: ModuleType) -> None:
        def connect(url: str, **kwargs: Any) -> psycopg.Connection:
            conn = migrator_dsn.connect(url, **kwargs)
            row = conn.execute("SHOW transaction_read_only").fetchone()
            self.sessions.append(
                {
                    "read_only": None if row is None else str(row[0]),
                    "connect_timeout": conn.info.get_parameters().get("connect_timeout"),
                }
            )
            return conn

        self.monkeypatch.setattr(module, "connect", connect)


class Logged:
    """What the program logs through pulumi.log while a test runs it, by level."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.info: list[str] = []
        self.warn: list[str] = []
        monkeypatch.setattr(pulumi.log, "info", lambda message, *a, **k: self.info.append(message))
        monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: self.warn.append(message))


class NoLock:
    """A locker that excludes nothing, as goose's session lock does behind a transaction pooler."""

    def lock(self, conn: psycopg.Connection, wait: float) -> None:
        pass

    def unlock(self, conn: psycopg.Connection) -> None:
        pass
