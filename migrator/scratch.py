"""A throwaway database on a scratch server, dropped whatever happens.

The rehearsal builds its databases on a server of its own (``--scratch-dsn``), never on the
target: it creates one with a unique name from ``template0`` (nothing an administrator added
to ``template1`` comes with it), and drops it ``WITH (FORCE)`` when the block ends, on an
error, Ctrl-C or SIGTERM alike. Roles are the whole server's, not the database's: the rehearsal
creates none, and a role the migrations create there outlives the database. It is not dropped,
since the server cannot say which session created it; the roles that appeared while the
database existed are named instead.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo, sql

from migrator.dsn import connect, describe, parse
from migrator.errors import DatabaseError
from migrator.pg_reasons import pg_reason

NAME_PREFIX = "migrator_rehearsal_"
_ROLES = "SELECT rolname FROM pg_roles"
_SCHEMAS = "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"


@dataclass
class ScratchDatabase:
    """The throwaway database: its name, a session on it, and what the server held before."""

    name: str
    server: str  # ``dbname on host:port`` of the scratch DSN, for messages
    conn: psycopg.Connection
    server_version: int
    fresh_schemas: frozenset[str]  # the schemas a new database has before any migration
    roles_appeared: list[str] = field(default_factory=list)  # on the server while it existed


def _names(conn: psycopg.Connection, query: str) -> frozenset[str]:
    return frozenset(str(row[0]) for row in conn.execute(query).fetchall())


@contextmanager
def throwaway_database(scratch_dsn: str) -> Iterator[ScratchDatabase]:
    """A new, empty database on the scratch server, with an autocommit session on it. After
    the block, ``roles_appeared`` names the roles that appeared on the server meanwhile."""
    server = describe(parse(scratch_dsn))
    with connect(scratch_dsn) as admin:
        name = f"{NAME_PREFIX}{secrets.token_hex(8)}"
        roles_before = _names(admin, _ROLES)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot create a throwaway database on the scratch server {server}: {pg_reason(exc)}"
                " (its role needs CREATEDB)"
            ) from None
        scratch: ScratchDatabase | None = None
        try:
            with connect(conninfo.make_conninfo(scratch_dsn, dbname=name)) as conn:
                scratch = ScratchDatabase(name, server, conn, conn.info.server_version, _names(conn, _SCHEMAS))
                yield scratch
        except BaseException as exc:
            # The database goes whatever happened; what happened stays the error reported.
            try:
                _clean_up(admin, name, server, roles_before, scratch)
            except DatabaseError as not_dropped:
                exc.add_note(str(not_dropped))
            raise
        _clean_up(admin, name, server, roles_before, scratch)


def _clean_up(
    admin: psycopg.Connection, name: str, server: str, roles_before: frozenset[str], scratch: ScratchDatabase | None
) -> None:
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise DatabaseError(
            f"the throwaway database {name} on the scratch server {server} could not be dropped:"
            f" {pg_reason(exc)}; drop it by hand"
        ) from None
    if scratch is not None:
        scratch.roles_appeared = sorted(_names(admin, _ROLES) - roles_before)
