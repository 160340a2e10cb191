"""Drift: the live schema against what its applied migrations build, object by object.

The expected schema is the rehearsal's replay of the applied files on a scratch server; the
comparison covers the schemas that replay put objects in, or created (``public`` counts only
when the migrations put something there), and never the migrator's own tables. An object is
missing (the files make it, the database lacks it), unexpected (the database has it, the files
do not make it) or different (both have it; both definitions are kept). A schema a new database
already has (``public``) is not compared as an object, nor are its grants: those come from how
the database was created, not from the migrations.

Without a scratch server, the run history's digests say whether the schema changed since the
last run that migrated it (``changes_since_last_run``), though not what changed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.history import runs_table
from migrator.schema_snapshot import SchemaObject, Snapshot, take_snapshot
from migrator.store import tolerated
from migrator.table_name import TableName


@dataclass(frozen=True)
class Difference:
    """An object both schemas have, defined differently."""

    expected: SchemaObject  # as the migrations build it
    found: SchemaObject  # as the database has it

    def __str__(self) -> str:
        return f"{self.expected}: expected {self.expected.definition!r}, found {self.found.definition!r}"


@dataclass(frozen=True)
class Drift:
    """The live schema against the replay of its applied files, in ``schemas``."""

    schemas: list[str]
    missing: list[SchemaObject] = field(default_factory=list)
    unexpected: list[SchemaObject] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.missing or self.unexpected or self.different)

    def keys(self) -> set[tuple[str, str]]:
        """The (kind, identity) of every object named."""
        named = [*self.missing, *self.unexpected, *(d.expected for d in self.different)]
        return {found.key for found in named}

    def without(self, keys: set[tuple[str, str]]) -> Drift:
        """The same, leaving out the objects ``keys`` name."""
        return Drift(
            self.schemas,
            [found for found in self.missing if found.key not in keys],
            [found for found in self.unexpected if found.key not in keys],
            [d for d in self.different if d.expected.key not in keys],
        )

    def lines(self) -> list[str]:
        """One line per object, missing first, for messages and warnings."""
        return (
            [f"missing {found}" for found in self.missing]
            + [f"unexpected {found}" for found in self.unexpected]
            + [f"different {difference}" for difference in self.different]
        )

    def as_dict(self) -> dict[str, object]:
        def described(found: SchemaObject) -> dict[str, str]:
            return {"kind": found.kind, "identity": found.identity, "definition": found.definition}

        return {
            "schemas": self.schemas,
            "missing": [described(found) for found in self.missing],
            "unexpected": [described(found) for found in self.unexpected],
            "different": [
                {
                    "kind": d.expected.kind,
                    "identity": d.expected.identity,
                    "expected": d.expected.definition,
                    "found": d.found.definition,
                }
                for d in self.different
            ],
        }


def compared_schemas(replay: Snapshot, fresh: Collection[str], excluded: Collection[str]) -> list[str]:
    """The schemas the migrations touch: those the replay holds objects in, or created."""
    holding = {found.schema for found in replay.objects.values() if not _is_schema_itself(found)}
    created = replay.schemas - set(fresh)
    return sorted((holding | created) - set(excluded))


def _is_schema_itself(found: SchemaObject) -> bool:
    return found.kind == "schema" or (found.kind == "grant" and found.identity.startswith("schema "))


def _comparable(snapshot: Snapshot, fresh: Collection[str]) -> Snapshot:
    """Without the objects a new database's own schemas stand for: the schema and its grants."""
    return Snapshot(
        {
            key: found
            for key, found in snapshot.objects.items()
            if not (found.schema in fresh and _is_schema_itself(found))
        }
    )


def compare(expected: Snapshot, found: Snapshot, schemas: list[str], fresh: Collection[str] = ()) -> Drift:
    """What ``found`` (the live schema) lacks, adds and defines otherwise than ``expected``."""
    want = _comparable(expected.within(schemas), fresh).objects
    have = _comparable(found.within(schemas), fresh).objects
    return Drift(
        schemas=schemas,
        missing=[want[key] for key in sorted(want.keys() - have.keys())],
        unexpected=[have[key] for key in sorted(have.keys() - want.keys())],
        different=[
            Difference(want[key], have[key])
            for key in sorted(want.keys() & have.keys())
            if want[key].definition != have[key].definition
        ],
    )


@dataclass(frozen=True)
class SchemaChange:
    """The schema's digests differ from those the last migrating run recorded."""

    run_at: datetime  # when that run finished
    schemas: list[str]  # whose digest differs, or which appeared or went since


def changes_since_last_run(conn: psycopg.Connection, table: TableName) -> SchemaChange | None:
    """Whether the schema changed since the newest successful run that recorded its digests;
    None when it did not, or when no run recorded them (nothing to compare with)."""
    try:
        with tolerated(conn):
            row = conn.execute(
                sql.SQL(
                    "SELECT finished_at, schema_digests FROM {} WHERE outcome = 'succeeded'"
                    " AND schema_digests IS NOT NULL ORDER BY id DESC LIMIT 1"
                ).format(runs_table(table).identifier)
            ).fetchone()
    except (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.InsufficientPrivilege):
        return None  # no run recorded digests yet, or this role may not read them
    if row is None:
        return None
    finished_at, recorded = row
    now = take_snapshot(conn, table).digests()
    changed = sorted(name for name in recorded.keys() | now.keys() if recorded.get(name) != now.get(name))
    return SchemaChange(finished_at, changed) if changed else None
