"""Failures that depend on the target's rows, predicted by counting them, read-only.

A rehearsal's database has the schema and no rows, so a constraint that existing rows violate
passes there and fails in production. Where one count can tell, the target is asked, in a
read-only transaction with a short ``statement_timeout``, before anything deploys:

- ``SET NOT NULL``: the rows with NULL in the column (all of them, for a column an earlier
  pending statement added without a default);
- ``ADD COLUMN ... NOT NULL`` without a default: the table's rows, each of which would be NULL;
- a primary key: the rows with NULL in a key column; a primary key, ``UNIQUE`` constraint or
  unique index: the key values more than one row holds;
- a foreign key (unless ``NOT VALID``): the rows whose key matches no row of the referenced table;
- a ``CHECK`` (unless ``NOT VALID``): the rows for which it is false.

Statements come from the pending files only, read with PostgreSQL's grammar (pglast). Tables
the pending files create are empty, and are skipped, as are keys over columns they add and
SET NOT NULL on a column they add with a default.
An earlier pending statement that writes the table (or a DO block or CALL, which may) can fix
or break the rows first: a violation is then "may fail", not "would fail". Anything else (a
type change whose cast fails on some value, triggers, what DO blocks and functions do) is not
predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from migrator.durations import milliseconds
from migrator.pg_reasons import pg_reason

if TYPE_CHECKING:
    from pglast import ast

    from migrator.planning import Step

DEFAULT_TIMEOUT = 5.0  # seconds each count may take on the target
_SERIAL_TYPES = {"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"}


class Verdict(StrEnum):
    WOULD_FAIL = "would fail"
    MAY_FAIL = "may fail"  # rows violate it now, but an earlier pending statement may change them
    PASSES = "passes"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class DataCheck:
    """One pending statement's constraint against the target's rows."""

    file: str
    statement: int
    line: int
    table: str  # as the statement names it
    constraint: str  # what the statement asks of the rows, e.g. "SET NOT NULL on column email"
    rows: int | None  # how many violate it now (key values, for duplicates); None: not checked
    violation: str  # what ``rows`` counts
    verdict: Verdict
    note: str = ""  # why "may fail" or "not checked"

    def __str__(self) -> str:
        where = f"{self.file}: statement {self.statement} (line {self.line}): {self.table}: {self.constraint}"
        if self.rows is None:
            return f"{where}: {self.verdict}: {self.note}"
        found = f"{self.rows} {self.violation}"
        return f"{where}: {self.verdict}: {found}" + (f"; {self.note}" if self.note else "")

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "statement": self.statement,
            "line": self.line,
            "table": self.table,
            "constraint": self.constraint,
            "rows": self.rows,
            "violation": self.violation,
            "verdict": self.verdict.value,
            "note": self.note,
        }


@dataclass(frozen=True)
class _Count:
    """A check to run: its description and the count that answers it. Earlier writes to
    ``also`` (a foreign key's new parent) make a violation uncertain, as writes to ``table`` do."""

    table: ast.RangeVar
    constraint: str
    violation: str
    query: sql.Composed
    also: tuple[ast.RangeVar, ...] = ()


@dataclass
class _Pending:
    """What the pending statements before the current one did, as far as the checks care."""

    added: dict[tuple[str | None, str, str], bool] = field(default_factory=dict)  # column -> has a default
    writes: dict[tuple[str | None, str], str] = field(default_factory=dict)  # table -> first writer
    unknown_writer: str | None = None  # the first DO block or CALL

    def adds_any(self, table: ast.RangeVar, columns: list[str]) -> bool:
        """Whether an earlier pending statement added one of the columns: their values come
        from the pending files (NULL or a default), not from the target's rows."""
        return any((*_key(table), column) in self.added for column in columns)


def predict(conn: psycopg.Connection, steps: list[Step], timeout: float = DEFAULT_TIMEOUT) -> list[DataCheck]:
    """Every check the pending ``steps`` call for, counted on ``conn`` (the target, autocommit)."""
    # pglast costs ~30 ms to import: only a rehearsal pays it here.
    from pglast import parser  # noqa: PLC0415

    found: list[DataCheck] = []
    pending = _Pending()
    for step in steps:
        for number, statement in enumerate(step.parsed.statements, start=1):
            where = f"statement {number} (line {statement.line}) of {step.migration.filename}"
            try:
                nodes = [raw.stmt for raw in parser.parse_sql(statement.sql) if raw.stmt is not None]
            except parser.ParseError:
                continue  # PostgreSQL will say what is wrong with it when it runs
            for node in nodes:
                for count in _counts(node, pending, conn):
                    rows, note = _count(conn, count.query, timeout)
                    writers = [pending.writes.get(_key(table)) for table in (count.table, *count.also)]
                    writer = next(filter(None, writers), pending.unknown_writer)
                    found.append(
                        DataCheck(
                            step.migration.filename,
                            number,
                            statement.line,
                            _name(count.table),
                            count.constraint,
                            rows,
                            count.violation,
                            *_verdict(rows, note, writer),
                        )
                    )
                _note_effects(node, pending, where)
    return found


def _verdict(rows: int | None, note: str, writer: str | None) -> tuple[Verdict, str]:
    if rows is None:
        return Verdict.NOT_CHECKED, note
    if rows == 0:
        return Verdict.PASSES, ""
    if writer is not None:
        return Verdict.MAY_FAIL, f"{writer} runs before it and may change those rows"
    return Verdict.WOULD_FAIL, ""


def _count(conn: psycopg.Connection, query: sql.Composed, timeout: float) -> tuple[int | None, str]:
    """The count, or None and why not: each in a read-only transaction of its own, so one
    that times out or is refused leaves the session fit for the next."""
    try:
        with conn.transaction():
            conn.execute(
                f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '{milliseconds(timeout)}ms';"
                f" SET LOCAL lock_timeout = '{milliseconds(min(timeout, 1.0))}ms'"
            )
            row = conn.execute(query).fetchone()
    except psycopg.Error as exc:
        return None, pg_reason(exc)
    return (int(row[0]) if row else 0), ""


def _key(table: ast.RangeVar) -> tuple[str | None, str]:
    return table.schemaname, str(table.relname)


def _name(table: ast.RangeVar) -> str:
    return ".".join(filter(None, _key(table)))


def _identifier(table: ast.RangeVar) -> sql.Identifier:
    return sql.Identifier(*filter(None, _key(table)))


def _exists(conn: psycopg.Connection, table: ast.RangeVar) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (_identifier(table).as_string(conn),)).fetchone()
    return bool(row and row[0])


def _counts(node: ast.Node, pending: _Pending, conn: psycopg.Connection) -> list[_Count]:
    from pglast import ast  # noqa: PLC0415

    if isinstance(node, ast.AlterTableStmt) and node.relation is not None and _exists(conn, node.relation):
        table = node.relation
        return [count for command in node.cmds or () for count in _alter_counts(conn, table, command, pending)]
    if isinstance(node, ast.IndexStmt) and node.unique and node.relation is not None and _exists(conn, node.relation):
        if pending.adds_any(node.relation, [str(element.name) for element in node.indexParams or () if element.name]):
            return []
        keys = [_index_key(element) for element in node.indexParams or ()]
        where = sql.SQL(_deparse(node.whereClause)) if node.whereClause is not None else None
        name = f"UNIQUE INDEX {node.idxname}" if node.idxname else "UNIQUE INDEX"
        return [_duplicates(node.relation, name, keys, where, nulls_distinct=not node.nulls_not_distinct)]
    return []


def _alter_counts(
    conn: psycopg.Connection, table: ast.RangeVar, command: ast.AlterTableCmd, pending: _Pending
) -> list[_Count]:
    from pglast import ast, enums  # noqa: PLC0415

    kind = command.subtype
    if kind == enums.AlterTableType.AT_SetNotNull and command.name:
        column = sql.Identifier(command.name)
        constraint = f"SET NOT NULL on column {command.name}"
        added = pending.added.get((*_key(table), command.name))
        if added is not None:
            # Added by an earlier pending statement: every existing row has its default there, or NULL.
            return [] if added else [_Count(table, constraint, "row(s) would have NULL there", _rows(table))]
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(_identifier(table), column)
        return [_Count(table, constraint, "row(s) have NULL there", query)]
    if kind == enums.AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        definition = command.def_
        if _not_null(definition) and not _has_default(definition):
            constraint = f"ADD COLUMN {definition.colname} NOT NULL without a default"
            return [_Count(table, constraint, "existing row(s) would have NULL there", _rows(table))]
        return []
    if kind == enums.AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        return _constraint_counts(conn, table, command.def_, pending)
    return []


def _constraint_counts(
    conn: psycopg.Connection, table: ast.RangeVar, constraint: ast.Constraint, pending: _Pending
) -> list[_Count]:
    from pglast import enums  # noqa: PLC0415

    kind = constraint.contype
    name = f" {constraint.conname}" if constraint.conname else ""
    columns = [str(key.sval) for key in constraint.keys or ()]
    if pending.adds_any(table, columns + [str(key.sval) for key in constraint.fk_attrs or ()]):
        return []
    if kind in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE) and columns:
        keys = [sql.Identifier(column) for column in columns]
        listed = ", ".join(columns)
        if kind == enums.ConstrType.CONSTR_UNIQUE:
            unique = _duplicates(table, f"UNIQUE{name} ({listed})", keys, None, not constraint.nulls_not_distinct)
            return [unique]
        described = f"PRIMARY KEY{name} ({listed})"
        nulls = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            _identifier(table), sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(key) for key in keys)
        )
        return [
            _Count(table, described, "row(s) have NULL in a key column", nulls),
            _duplicates(table, described, keys, None, nulls_distinct=True),
        ]
    if kind == enums.ConstrType.CONSTR_FOREIGN and not constraint.skip_validation and constraint.pktable:
        return [_orphans(conn, table, constraint, name)]
    if kind == enums.ConstrType.CONSTR_CHECK and not constraint.skip_validation and constraint.raw_expr:
        condition = _deparse(constraint.raw_expr)
        query = sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(_identifier(table), sql.SQL(condition))
        return [_Count(table, f"CHECK{name} ({condition})", "row(s) fail the condition", query)]
    return []


def _orphans(conn: psycopg.Connection, table: ast.RangeVar, constraint: ast.Constraint, name: str) -> _Count:
    parent = constraint.pktable
    assert parent is not None
    columns = [str(key.sval) for key in constraint.fk_attrs or ()]
    own = [sql.SQL("child.{}").format(sql.Identifier(column)) for column in columns]
    keyed = sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(column) for column in own)
    referenced = [str(key.sval) for key in constraint.pk_attrs or ()]
    target = f"{_name(parent)} ({', '.join(referenced)})" if referenced else _name(parent)
    described = f"FOREIGN KEY{name} ({', '.join(columns)}) REFERENCES {target}"
    violation = f"row(s) refer to no row of {_name(parent)}"
    if not _exists(conn, parent):
        # The pending files create it, empty: every key is an orphan until something fills it.
        query = sql.SQL("SELECT count(*) FROM {} AS child WHERE {}").format(_identifier(table), keyed)
        return _Count(table, described, violation, query, (parent,))
    parent_keys = [sql.Identifier(key) for key in referenced or _primary_key(conn, parent)]
    matches = sql.SQL(" AND ").join(
        sql.SQL("parent.{} = {}").format(key, column) for key, column in zip(parent_keys, own, strict=True)
    )
    query = sql.SQL(
        "SELECT count(*) FROM {} AS child WHERE {} AND NOT EXISTS (SELECT FROM {} AS parent WHERE {})"
    ).format(_identifier(table), keyed, _identifier(parent), matches)
    return _Count(table, described, violation, query)


def _primary_key(conn: psycopg.Connection, table: ast.RangeVar) -> list[str]:
    """The columns of the table's primary key, in the key's order (none when it has none)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, n), pg_attribute a"
        " WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p' AND a.attrelid = c.conrelid"
        " AND a.attnum = k.attnum ORDER BY k.n",
        (_identifier(table).as_string(conn),),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _duplicates(
    table: ast.RangeVar,
    constraint: str,
    keys: Sequence[sql.Composable],
    where: sql.Composable | None,
    nulls_distinct: bool,
) -> _Count:
    conditions: list[sql.Composable] = [sql.SQL("{} IS NOT NULL").format(key) for key in keys] if nulls_distinct else []
    if where is not None:
        conditions.append(sql.SQL("({})").format(where))
    filtered = sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conditions)) if conditions else sql.SQL("")
    query = sql.SQL("SELECT count(*) FROM (SELECT FROM {}{} GROUP BY {} HAVING count(*) > 1) duplicated").format(
        _identifier(table), filtered, sql.SQL(", ").join(keys)
    )
    return _Count(table, constraint, "key value(s) are held by more than one row", query)


def _rows(table: ast.RangeVar) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(_identifier(table))


def _index_key(element: ast.IndexElem) -> sql.Composable:
    if element.name:
        return sql.Identifier(element.name)
    assert element.expr is not None  # an index element is a column or an expression
    return sql.SQL("({})").format(sql.SQL(_deparse(element.expr)))


def _deparse(node: ast.Node) -> str:
    from pglast.stream import RawStream  # noqa: PLC0415

    return str(RawStream()(node))


def _not_null(definition: ast.ColumnDef) -> bool:
    from pglast import enums  # noqa: PLC0415

    kinds = {constraint.contype for constraint in definition.constraints or ()}
    return bool(definition.is_not_null or kinds & {enums.ConstrType.CONSTR_NOTNULL, enums.ConstrType.CONSTR_PRIMARY})


def _has_default(definition: ast.ColumnDef) -> bool:
    from pglast import enums  # noqa: PLC0415

    filled = {enums.ConstrType.CONSTR_DEFAULT, enums.ConstrType.CONSTR_IDENTITY, enums.ConstrType.CONSTR_GENERATED}
    type_name = definition.typeName.names[-1].sval if definition.typeName and definition.typeName.names else ""
    return bool(
        definition.raw_default is not None
        or any(constraint.contype in filled for constraint in definition.constraints or ())
        or type_name in _SERIAL_TYPES
    )


def _note_effects(node: ast.Node, pending: _Pending, where: str) -> None:
    """Remember what a pending statement does that a later check must know of."""
    from pglast import ast, enums  # noqa: PLC0415

    if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        for command in node.cmds or ():
            if command.subtype == enums.AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
                column = command.def_
                pending.added.setdefault((*_key(node.relation), str(column.colname)), _has_default(column))
    if isinstance(node, ast.DoStmt | ast.CallStmt) and pending.unknown_writer is None:
        pending.unknown_writer = where
    for table in _written(node):
        pending.writes.setdefault(_key(table), where)


def _written(node: ast.Node) -> list[ast.RangeVar]:
    """The tables a statement writes rows of."""
    from pglast import ast  # noqa: PLC0415

    match node:
        case (
            ast.InsertStmt(relation=table)
            | ast.UpdateStmt(relation=table)
            | ast.DeleteStmt(relation=table)
            | ast.MergeStmt(relation=table)
            | ast.CopyStmt(relation=table, is_from=True)
        ) if table is not None:
            return [table]
        case ast.TruncateStmt(relations=tables):
            return list(tables or ())
    return []
