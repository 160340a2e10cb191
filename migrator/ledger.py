"""The migrator's own sidecar table beside goose's: file checksums and run progress.

goose's table stays exactly as goose defines it, so goose keeps working on the same
database. The sidecar, ``<table>_ledger`` in the same schema, records for each applied
version the SHA-256 of the file that was applied, and for a NO TRANSACTION file how
many of its statements ran, so a run that died part-way is visible afterwards.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.errors import DatabaseError

# What the ledger records is defined apart, so that commands that never connect import no psycopg.
from migrator.ledger_entries import SEAL_NAME, SEAL_VERSION, Entry, LedgerUnreadable, State
from migrator.source import Migration
from migrator.store import table_exists, tolerated
from migrator.table_name import TableName

_STATES = {state.value for state in State}


class Ledger:
    def __init__(self, conn: psycopg.Connection, table: TableName):
        self.conn = conn
        self.table = TableName(table.schema, f"{table.name}_ledger")

    def ensure(self) -> None:
        if table_exists(self.conn, self.table):
            return
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version_id bigint PRIMARY KEY,"
                " filename text NOT NULL,"
                " sha256 text NOT NULL,"
                " state text NOT NULL CHECK (state IN ('applied', 'applying', 'reverting')),"
                " statements_done integer NOT NULL DEFAULT 0,"
                " statements_total integer NOT NULL DEFAULT 0,"
                " recorded_at timestamptz NOT NULL DEFAULT now())"
            ).format(self.table.identifier)
        )

    def entries(self) -> dict[int, Entry]:
        """Every version's entry; LedgerUnreadable when this role may not read the ledger."""
        if not table_exists(self.conn, self.table):
            return {}
        try:
            with tolerated(self.conn):
                rows = self.conn.execute(
                    sql.SQL(
                        "SELECT version_id, filename, sha256, state, statements_done, statements_total FROM {}"
                    ).format(self.table.identifier)
                ).fetchall()
        except pg_errors.InsufficientPrivilege:
            raise LedgerUnreadable(f"no privilege to read {self.table}") from None
        entries = {}
        for version, filename, sha256, state, done, total in rows:
            if version == SEAL_VERSION:
                continue
            if state not in _STATES:
                raise DatabaseError(
                    f"{self.table}: version {version} has the unknown state {state!r}; a newer migrator may have"
                    " written it. Nothing was changed"
                )
            entries[version] = Entry(version, filename, sha256, State(state), done, total)
        return entries

    def seal_sql(self, digest: str | None) -> sql.Composed:
        if digest is None:
            return self.remove_sql(SEAL_VERSION)
        return self.put_sql(SEAL_VERSION, SEAL_NAME, digest, State.APPLIED)

    def put_sql(self, version: int, filename: str, sha256: str, state: State, total: int = 0) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (version_id, filename, sha256, state, statements_done, statements_total)"
            " VALUES ({}, {}, {}, {}, 0, {}) ON CONFLICT (version_id) DO UPDATE SET"
            " filename = excluded.filename, sha256 = excluded.sha256, state = excluded.state,"
            # Rerunning the same interrupted file must not forget which statements already ran.
            " statements_done = CASE WHEN {ledger}.state = excluded.state AND {ledger}.sha256 = excluded.sha256"
            " AND excluded.state <> 'applied' THEN {ledger}.statements_done ELSE 0 END,"
            " statements_total = excluded.statements_total, recorded_at = now()"
        ).format(
            self.table.identifier,
            *map(sql.Literal, (version, filename, sha256, state.value, total)),
            ledger=self.table.identifier,
        )

    def record_applied(self, migrations: list[Migration], sha256: dict[int, str]) -> None:
        """Record these files as applied with these checksums, in one round trip."""
        self.conn.execute(
            sql.SQL("; ").join(
                self.put_sql(m.version, m.filename, sha256[m.version], State.APPLIED) for m in migrations
            )
        )

    def progress_sql(self, version: int, done: int) -> sql.Composed:
        """Statements known to have run: never fewer than an earlier, interrupted run got to."""
        return sql.SQL("UPDATE {} SET statements_done = greatest(statements_done, {}) WHERE version_id = {}").format(
            self.table.identifier, sql.Literal(done), sql.Literal(version)
        )

    def remove_sql(self, version: int) -> sql.Composed:
        return sql.SQL("DELETE FROM {} WHERE version_id = {}").format(self.table.identifier, sql.Literal(version))
