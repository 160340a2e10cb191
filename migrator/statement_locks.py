"""The locks a migration's statements take on relations that existed before its file.

An ``ACCESS EXCLUSIVE`` lock on an existing table stops every read and write of it until the
file commits: worth knowing before it happens in production. The rehearsal's Applier calls the
observer after each statement of a file that runs in a transaction, on the migrating session
and inside that transaction, where ``pg_locks`` still lists every lock the file holds. A
statement is said to take, on each relation, the strongest mode it added there, when that is
stronger than what the file already held on it (an ALTER TABLE that also reads the table took
ACCESS EXCLUSIVE; the ACCESS SHARE beside it blocks nothing more). A NO TRANSACTION file's
statements release their locks as each one ends, so none are read there.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from migrator.planning import Step

# PostgreSQL's table lock modes, weakest first (each conflicts with more than the one before);
# SIReadLock, a serializable transaction's predicate lock, blocks nothing.
_STRENGTH = {
    mode: rank
    for rank, mode in enumerate(
        (
            "AccessShareLock",
            "RowShareLock",
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
            "ShareLock",
            "ShareRowExclusiveLock",
            "ExclusiveLock",
            "AccessExclusiveLock",
        )
    )
}
# pg_class.relkind, as a lock report names it.
_RELATION_KINDS = {
    "r": "table",
    "p": "table",
    "f": "foreign table",
    "i": "index",
    "I": "index",
    "S": "sequence",
    "v": "view",
    "m": "materialized view",
}


@dataclass(frozen=True, order=True)
class RelationLock:
    """A lock a statement took on a relation that existed before its file."""

    relation: str  # schema-qualified
    kind: str  # table, index, sequence, view, ...
    mode: str  # PostgreSQL's name, e.g. AccessExclusiveLock

    @property
    def blocks(self) -> str | None:
        """What other sessions may not do to the relation until the file commits: read or write
        it (ACCESS EXCLUSIVE), write it (SHARE and stronger), or nothing they usually do."""
        if self.mode == "AccessExclusiveLock":
            return "reads and writes"
        return "writes" if _STRENGTH[self.mode] >= _STRENGTH["ShareLock"] else None

    @property
    def blocks_the_table(self) -> bool:
        """ACCESS EXCLUSIVE on an existing table: the lock to know of before production takes it."""
        return self.mode == "AccessExclusiveLock" and self.kind == "table"

    def __str__(self) -> str:
        return f"{self.mode} on {self.kind} {self.relation}"


@dataclass(frozen=True)
class StatementLocks:
    """The locks one statement of a transactional file made stronger on tables that existed before it."""

    statement: int
    line: int
    locks: list[RelationLock]


class LockObserver:
    """Reads, after each statement of a transactional file, the locks its session holds on
    relations that existed before the file, and keeps the ones each statement made stronger."""

    def __init__(self, conn: psycopg.Connection, own_tables: list[str]):
        self.conn = conn
        self.own_tables = own_tables
        self.existing: dict[int, tuple[str, str]] = {}
        self.strongest: dict[int, int] = {}  # relation -> the strongest mode the file holds there
        self.found: list[StatementLocks] = []

    def start(self) -> None:
        """Before a file: the relations that exist now, the migrator's own tables and their
        indexes left out (the guard that opens each file reads goose's table by its key)."""
        rows = self.conn.execute(
            "WITH own AS (SELECT array_remove(ARRAY[to_regclass(%s), to_regclass(%s), to_regclass(%s)]::oid[], NULL)"
            " AS oids)"
            " SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, own"
            " WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' AND c.oid <> ALL (own.oids)"
            " AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = ANY (own.oids))"
            " AND c.relkind = ANY (%s)",
            (*self.own_tables, list(_RELATION_KINDS)),
        ).fetchall()
        self.existing = {int(oid): (str(name), _RELATION_KINDS[kind]) for oid, name, kind in rows}
        self.strongest, self.found = {}, []

    def __call__(self, step: Step, number: int) -> None:
        if number == 1:  # the file runs again after a lock retry
            self.strongest, self.found = {}, []
        rows = self.conn.execute(
            "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'"
            " AND granted AND relation = ANY (%s::oid[]) AND mode = ANY (%s)",
            (list(self.existing), list(_STRENGTH)),
        ).fetchall()
        taken = []
        for oid, mode in sorted(rows, key=lambda row: _STRENGTH[row[1]], reverse=True):
            relation, rank = int(oid), _STRENGTH[mode]
            if rank > self.strongest.get(relation, -1):
                self.strongest[relation] = rank
                taken.append(RelationLock(*self.existing[relation], mode))
        if taken:
            self.found.append(StatementLocks(number, step.parsed.statements[number - 1].line, sorted(taken)))
