"""The server session a writing run is given: whether it is the run's own and may write, where
the migrator's tables are, and the session settings every file starts from.

Behind a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``, Supabase's port
6543) each transaction may run in another server session: goose's session advisory lock holds
nothing there, and whatever a session sets is handed to the pooler's next client. PgBouncer
gives the server connection released last to the next client, so a second, short-lived client
connection that gets the run's server session, or a run's connection that sees two, gives
such a pooler away. A writing run looks before it locks or sets anything, and is refused
there, as it is on a hot standby or in a session that may not write.

The migrator's own tables are named with the schema they resolve to when the run starts, so a
file's ``SET search_path`` cannot send the run's bookkeeping elsewhere. Every file ends by
giving the session back as the run began it: ``RESET ALL`` and the settings the session had,
and the role and session authorization, which ``RESET ALL`` leaves alone.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass

import psycopg
from psycopg import conninfo, sql

from migrator.errors import InputError
from migrator.table_name import TableName

# Who the server session is: a pid alone may be reused by a later session.
_IDENTITY = "SELECT pg_backend_pid(), (SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid())"
# The session as the run finds it: its identity, whether it may write, the schema an unqualified
# table name resolves to (where it exists, else where CREATE TABLE puts it), the role and
# session authorization it runs as, and every setting made for the session.
_PROBE = (
    "SELECT pg_backend_pid(), (SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()),"
    " pg_is_in_recovery(), current_setting('transaction_read_only') = 'on',"
    " coalesce((SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.oid = to_regclass(%s)), current_schema()::text),"
    " session_user::text IS DISTINCT FROM (SELECT usename::text FROM pg_stat_activity WHERE pid = pg_backend_pid()),"
    " session_user::text, current_setting('role'),"
    " ARRAY(SELECT ARRAY[name, current_setting(name)] FROM pg_settings WHERE source = 'session' ORDER BY name)"
)
# Turns the run's connection and the second client take (see writable_session).
_TURNS = 3
# How long the second client waits for a server session: a session pooler whose every server
# connection is taken would keep it waiting; the run then goes on with what it saw itself.
SECOND_CLIENT_WAIT = 5.0
# The server drops a vanished client's session, and with it the advisory lock, instead of
# waiting for the kernel's two-hour default (client_connection_check_interval: PostgreSQL 14).
_RUN_SETTINGS = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
_CHECK_INTERVAL = ("client_connection_check_interval", "1s")


class SessionRefused(InputError):
    """The session cannot run a writing command safely; nothing was run or set."""


Identity = tuple[int, str]


def _configure(conn: psycopg.Connection, settings: list[tuple[str, str]]) -> str:
    """One statement that sets each setting for the session to its text as the server shows
    it (set_config reads a list such as search_path as written; SET would quote it whole)."""
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value)) for name, value in settings
    )
    return f"SELECT {calls.as_string(conn)}" if settings else ""


def _joined(*statements: str) -> str:
    return "; ".join(statement for statement in statements if statement)


@dataclass(frozen=True)
class RunSession:
    """What a writing run sends to give the session back as it began it: ``identity`` (the
    session authorization and role, before a file's bookkeeping), ``settings`` (every other
    setting), and ``run_settings``, which the run adds for itself."""

    table: TableName  # goose's table, schema-qualified when the schema could be resolved
    identity: str
    settings: str
    run_settings: str

    @property
    def file_end(self) -> str:
        """After a file: the session as the run set it up."""
        return _joined(self.identity, self.settings, self.run_settings)

    @property
    def run_end(self) -> str:
        """After the run: the session as the run was given it."""
        return _joined(self.identity, self.settings)


def _probe(conn: psycopg.Connection, table: TableName) -> tuple[Identity, RunSession]:
    row = conn.execute(_PROBE, (table.identifier.as_string(conn),)).fetchone()
    assert row is not None
    pid, started, in_recovery, read_only, schema, authorized, session_user, role, settings = row
    if in_recovery:
        raise SessionRefused(
            "the database is a hot standby (pg_is_in_recovery() is true), which cannot be written:"
            " nothing was run. Connect to the primary"
        )
    if read_only:
        raise SessionRefused(
            "the session may not write (transaction_read_only is on: default_transaction_read_only is set for"
            " this database, role or connection): nothing was run. Connect with a session that may write"
        )
    identity = "RESET SESSION AUTHORIZATION"
    if authorized:
        identity += sql.SQL("; SET SESSION AUTHORIZATION {}").format(sql.Literal(session_user)).as_string(conn)
    if role != "none":
        identity += sql.SQL("; SET ROLE {}").format(sql.Literal(role)).as_string(conn)
    session = RunSession(
        TableName(table.schema or schema, table.name),
        identity,
        _joined("RESET ALL", _configure(conn, [(name, value) for name, value in settings])),
        _configure(conn, _run_settings(conn)),
    )
    return (int(pid), str(started)), session


def _run_settings(conn: psycopg.Connection) -> list[tuple[str, str]]:
    settings = list(_RUN_SETTINGS.items())
    if conn.info.server_version >= 140000:
        settings.insert(0, _CHECK_INTERVAL)
    return settings


def own_session(conn: psycopg.Connection, table: TableName) -> RunSession:
    """The session of a connection the caller alone uses (a throwaway database of its own,
    reached directly), without the second client that looks for a pooler."""
    return _probe(conn, table)[1]


class _SecondClient:
    """A short-lived client connection beside the run's, connected before the run's first
    probe so that what the pooler hands it follows that probe at once. It asks its server
    session's identity without psycopg's unbounded wait, and gives up for good once it has
    waited SECOND_CLIENT_WAIT in all (or could not connect: a server at max_connections)."""

    def __init__(self, conn: psycopg.Connection):
        self.deadline = time.monotonic() + SECOND_CLIENT_WAIT
        try:
            dsn = conninfo.make_conninfo(conn.info.dsn, password=conn.info.password)
            self.conn: psycopg.Connection | None = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
        except psycopg.Error:
            self.conn = None

    def identity(self) -> Identity | None:
        if self.conn is None:
            return None
        pgconn = self.conn.pgconn
        pgconn.send_query(_IDENTITY.encode())
        while pgconn.is_busy():
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or not select.select([pgconn.socket], [], [], remaining)[0]:
                self.close()
                return None
            pgconn.consume_input()
        result = pgconn.get_result()
        while pgconn.get_result() is not None:
            pass  # the query's end, so the connection takes the next one
        if result is None or result.ntuples != 1:
            return None
        pid, started = result.get_value(0, 0), result.get_value(0, 1)
        assert pid is not None
        assert started is not None
        return int(pid), started.decode()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()  # whatever is still on its way, the pooler drops with the client
            self.conn = None


def _identity(conn: psycopg.Connection) -> Identity:
    row = conn.execute(_IDENTITY).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def writable_session(conn: psycopg.Connection, table: TableName) -> RunSession:
    """The session of a writing run, after making sure it is the run's own and may write;
    SessionRefused, before anything is locked or set, when it is not.

    The run's connection and a second client take turns: behind a transaction pooler each is
    handed the server connection the other has just released, unless a third client took it
    in between; to miss the pooler, that must happen at every turn."""
    other = _SecondClient(conn)
    try:
        first, session = _probe(conn, table)
        ours, theirs = [first], []
        for _ in range(_TURNS):
            theirs.append(other.identity())
            ours.append(_identity(conn))
    finally:
        other.close()
    moved = next((identity for identity in ours if identity != first), None)
    if moved is not None:
        seen = f"this connection's transactions ran in two server sessions (backend pid {first[0]}, then {moved[0]})"
    elif first in theirs:
        seen = f"a second connection was given this connection's server session (backend pid {first[0]})"
    else:
        return session
    raise SessionRefused(
        f"the database is reached through a pooler in transaction mode: {seen}. goose's advisory lock would"
        " exclude nothing there and a migration could be applied twice, so nothing was run. Connect directly,"
        " or through the pooler in session mode (Supabase: port 5432 instead of 6543)"
    )
