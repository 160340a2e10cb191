"""Who may migrate now: goose's session advisory lock, behind a small locker interface.

A writing command holds a lock for its whole run. The default is goose's own advisory
lock, polled until it is free or the wait runs out, so this migrator and goose never
run at once; the ``SessionLocker`` interface lets a caller bring another kind.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.errors import LockTimeout

# goose's lock.DefaultLockID: the migrator and goose (as a library) exclude each other.
GOOSE_LOCK_ID = 4097083626
# The row of pg_locks ``l`` that is goose's lock, granted, in this database. A one-bigint
# advisory key is stored as classid (high 32 bits) and objid (low 32 bits).
GOOSE_LOCK_ROW = (
    "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    f" AND l.classid::bigint = {GOOSE_LOCK_ID >> 32} AND l.objid::bigint = {GOOSE_LOCK_ID & 0xFFFFFFFF}"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_MAX_POLL_SECONDS = 1.0


def _try_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (GOOSE_LOCK_ID,)).fetchone()
    return bool(row and row[0])


def _holder(conn: psycopg.Connection) -> str:
    """Who holds the lock, what it is doing and since when; an idle holder runs nothing that
    could ever let go of it, so it has most likely leaked the lock."""
    row = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, ''), a.usename, a.state,"
        " to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
        " round(extract(epoch FROM now() - a.state_change))::bigint FROM pg_locks l"
        f" LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE {GOOSE_LOCK_ROW}"
    ).fetchone()
    if row is None:
        return "another session, which has let go of it since: try again"
    pid, application, user, state, since, seconds = row
    who = f"backend pid {pid} (application {application!r}, user {user})"
    if state is None:
        return (
            f"{who}, whose state this role may not see: another migrator or goose is running, or the lock was"
            " leaked; a role with pg_read_all_stats sees which"
        )
    if state == "idle":
        return (
            f"{who}, idle since {since} UTC ({seconds}s): a session that holds the lock and runs nothing has most"
            f" likely leaked it; if no migrator or goose is running, free it with SELECT pg_terminate_backend({pid})"
        )
    return f"{who}, {state} since {since} UTC ({seconds}s): another migrator or goose is running"


def _wait_for_lock(conn: psycopg.Connection, wait_seconds: float) -> None:
    """Poll until the lock is ours, each poll waiting in the server for up to a second.

    A waiter blocked in pg_advisory_lock wakes the moment the holder lets go; sleeping
    between pg_try_advisory_lock calls would add most of a pause to every hand-over.
    """
    deadline = time.monotonic() + wait_seconds
    while (remaining := deadline - time.monotonic()) > 0:
        wait_ms = max(1, round(min(remaining, _MAX_POLL_SECONDS) * 1000))
        try:
            conn.execute(
                sql.SQL("SET lock_timeout = {}; SELECT pg_advisory_lock({})").format(
                    sql.Literal(f"{wait_ms}ms"), sql.Literal(GOOSE_LOCK_ID)
                )
            )
        except pg_errors.LockNotAvailable:
            continue  # the failed statement took its SET with it
        conn.execute("RESET lock_timeout")
        return
    raise LockTimeout(
        f"migration lock (advisory key {GOOSE_LOCK_ID}) not acquired within {wait_seconds:g}s:"
        f" held by {_holder(conn)}. Nothing was changed"
    )


class SessionLocker(Protocol):
    """Keeps other migrators off the database while a command runs, as goose's SessionLocker
    does. A writing run takes it only in a session of its own (server_session.py refuses a
    pooler in transaction mode first): goose's table locker (``goose_lock``) would hold there,
    but goose's session locker, which this one must exclude, would not."""

    def lock(self, conn: psycopg.Connection, wait: float) -> None:
        """Take the lock, waiting at most ``wait`` seconds; LockTimeout when it stays taken."""

    def unlock(self, conn: psycopg.Connection) -> None:
        """Let go of the lock; a lost session must not raise here, over the error that lost it."""


class AdvisoryLocker:
    """goose's lock: the session advisory lock on key 4097083626."""

    def lock(self, conn: psycopg.Connection, wait: float) -> None:
        if not _try_lock(conn):
            _wait_for_lock(conn, wait)

    def unlock(self, conn: psycopg.Connection) -> None:
        # A lost session has already released the lock; the original error matters more.
        with suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (GOOSE_LOCK_ID,))
