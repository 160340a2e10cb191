"""Statements that build an index concurrently, and the INVALID indexes a build that did not
finish leaves behind.

``CREATE [UNIQUE] INDEX CONCURRENTLY`` and ``REINDEX ... CONCURRENTLY`` wait for every
transaction in the database that is older than their snapshots, whichever table it uses. A
short ``lock_timeout`` cancels them whenever any transaction has been open that long, so they
run without one (``statement_timeout`` still bounds them); they never block the application
while they wait. A build that stops part-way leaves an INVALID index, which PostgreSQL keeps
up to date but never reads, and which ``IF NOT EXISTS`` takes for a finished one.

Which statements are such builds is PostgreSQL's grammar's answer (``pg_grammar``, which names
them ``CREATE INDEX CONCURRENTLY`` and ``REINDEX CONCURRENTLY``); this module only reads where
their indexes stand.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

# What a REINDEX of one index may leave: the new copy (<name>_ccnew) or the old one (<name>_ccold).
_INVALID = sql.SQL(
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid AND ({}) ORDER BY 1"
)
# The SQLSTATE of refusal_sql's error, whose message is the INVALID indexes, one a line.
INVALID_LEFT = "MG003"


def _regclass(schema: str | None, name: str | None) -> sql.Composable:
    qualified = sql.Identifier(schema, str(name)) if schema else sql.Identifier(str(name))
    return sql.SQL("to_regclass({})").format(sql.Literal(qualified.as_string()))


BUILDS = ("CREATE INDEX CONCURRENTLY", "REINDEX CONCURRENTLY")  # as pg_grammar names them


def concurrent_build(statement: str) -> sql.Composable | None:
    """Where the indexes of a statement the grammar named a concurrent build (BUILDS) stand, as
    a condition on ``pg_index i``, the index's ``pg_class c`` and its ``pg_namespace n``; None
    when pglast cannot read it."""
    # pglast costs ~30 ms to import: only runs that reach such a statement pay it.
    from pglast import ast, enums, parser  # noqa: PLC0415

    try:
        parsed = parser.parse_sql(statement)
    except parser.ParseError:
        return None
    found: list[sql.Composable] = []
    for raw in parsed:
        node = raw.stmt
        if isinstance(node, ast.IndexStmt) and node.relation is not None:
            table = sql.SQL("i.indrelid = {}").format(_regclass(node.relation.schemaname, node.relation.relname))
            named = sql.SQL(" AND c.relname = {}").format(sql.Literal(node.idxname)) if node.idxname else sql.SQL("")
            found.append(sql.Composed([table, named]))
        elif isinstance(node, ast.ReindexStmt):
            kind, relation = node.kind, node.relation
            if kind is enums.ReindexObjectType.REINDEX_OBJECT_INDEX and relation is not None:
                index = _regclass(relation.schemaname, relation.relname)
                found.append(
                    sql.SQL("i.indrelid = (SELECT indrelid FROM pg_index WHERE indexrelid = {})"
                            " AND starts_with(c.relname, {})").format(index, sql.Literal(relation.relname))
                )  # fmt: skip
            elif kind is enums.ReindexObjectType.REINDEX_OBJECT_TABLE and relation is not None:
                found.append(sql.SQL("i.indrelid = {}").format(_regclass(relation.schemaname, relation.relname)))
            elif kind is enums.ReindexObjectType.REINDEX_OBJECT_SCHEMA:
                found.append(sql.SQL("n.nspname = {}").format(sql.Literal(node.name)))
            else:
                found.append(sql.SQL("true"))
    return sql.SQL(" OR ").join(found) if found else None


def invalid_indexes(conn: psycopg.Connection, builds: list[sql.Composable]) -> list[str]:
    """The INVALID indexes where ``builds`` put theirs, schema-qualified, in name order."""
    if not builds:
        return []
    rows = conn.execute(_INVALID.format(sql.SQL(" OR ").join(builds))).fetchall()
    return [str(row[0]) for row in rows]


def refusal_sql(builds: list[sql.Composable]) -> sql.Composable:
    """A statement that fails with INVALID_LEFT when there are INVALID indexes where ``builds``
    put theirs: sent with what records the file, it keeps the file from being recorded."""
    return sql.SQL(
        "DO $migrator_invalid$ DECLARE found text; BEGIN SELECT string_agg(name, E'\\n') INTO found FROM ({})"
        " invalid (name); IF found IS NOT NULL THEN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = found;"
        " END IF; END $migrator_invalid$"
    ).format(_INVALID.format(sql.SQL(" OR ").join(builds)), sql.SQL(INVALID_LEFT))


def repair(indexes: list[str]) -> str:
    """What to do about INVALID indexes before the file runs again."""
    drops = "; ".join(f"DROP INDEX CONCURRENTLY {name}" for name in indexes)
    return f"INVALID index(es) {', '.join(indexes)} remain from a concurrent build that did not finish: {drops}"
