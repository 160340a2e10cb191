"""The migrator's own sidecar table beside goose's: file checksums and run progress.

goose's table stays exactly as goose defines it, so goose keeps working on the same
database. The sidecar, ``<table>_ledger`` in the same schema, records for each applied
version the SHA-256 of the file that was applied, and for a NO TRANSACTION file how
many of its statements ran, so a run that died part-way is visible afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import sql

from migrator.store import TableName, table_exists


class State(StrEnum):
    APPLIED = "applied"
    APPLYING = "applying"  # a NO TRANSACTION file is running, or died running
    REVERTING = "reverting"


@dataclass(frozen=True)
class Entry:
    version: int
    filename: str
    sha256: str
    state: State
    statements_done: int
    statements_total: int


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        if not table_exists(self.conn, self.table):
            return {}
        rows = self.conn.execute(
            sql.SQL("SELECT version_id, filename, sha256, state, statements_done, statements_total FROM {}").format(
                self.table.identifier
            )
        ).fetchall()
        return {row[0]: Entry(row[0], row[1], row[2], State(row[3]), row[4], row[5]) for row in rows}

    def put(self, version: int, filename: str, sha256: str, state: State, total: int = 0) -> None:
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (version_id, filename, sha256, state, statements_done, statements_total)"
                " VALUES (%s, %s, %s, %s, 0, %s) ON CONFLICT (version_id) DO UPDATE SET"
                " filename = excluded.filename, sha256 = excluded.sha256, state = excluded.state,"
                " statements_done = 0, statements_total = excluded.statements_total, recorded_at = now()"
            ).format(self.table.identifier),
            (version, filename, sha256, state.value, total),
        )

    def progress(self, version: int, done: int) -> None:
        self.conn.execute(
            sql.SQL("UPDATE {} SET statements_done = %s WHERE version_id = %s").format(self.table.identifier),
            (done, version),
        )

    def remove(self, version: int) -> None:
        self.conn.execute(sql.SQL("DELETE FROM {} WHERE version_id = %s").format(self.table.identifier), (version,))
