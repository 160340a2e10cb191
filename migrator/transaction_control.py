"""Refusing statements that would end the transaction a migration runs in.

A ``COMMIT`` (or ``BEGIN``, ``ROLLBACK``, ``END``, ``PREPARE TRANSACTION``) inside a file that
runs in one transaction splits it: what came before is committed, so a later failure
rolls back only part of the file, and the version row no longer travels with the schema
change. goose runs such files anyway; the migrator refuses them where they are parsed.

PostgreSQL's own grammar (pglast, libpg_query) finds them, so a ``BEGIN`` inside a function
body, a ``DO`` block or ``BEGIN ATOMIC`` is not mistaken for one. A statement the grammar
cannot read is left for the server to report when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from migrator.errors import ParseError

if TYPE_CHECKING:
    from migrator.parser import Statement

# pglast's TransactionStmtKind names; SAVEPOINT, RELEASE and ROLLBACK TO stay inside the transaction.
_ENDS_TRANSACTION = {
    f"TRANS_STMT_{kind}"
    for kind in ("BEGIN", "START", "COMMIT", "ROLLBACK", "PREPARE", "COMMIT_PREPARED", "ROLLBACK_PREPARED")
}


def refuse_transaction_control(statements: Iterable[Statement]) -> None:
    """ParseError at the line of the first statement that begins or ends a transaction."""
    # pglast costs ~30 ms to import: only runs that parse files pay it, never a sealed no-op.
    from pglast import ast, parser  # noqa: PLC0415

    for statement in statements:
        try:
            parsed = parser.parse_sql(statement.sql)
        except parser.ParseError:
            continue
        for raw in parsed:
            node = raw.stmt
            if isinstance(node, ast.TransactionStmt) and node.kind is not None and node.kind.name in _ENDS_TRANSACTION:
                offset = raw.stmt_location or 0
                keyword = " ".join(statement.sql[offset:].split()[:1]).rstrip(";").upper()
                raise ParseError(
                    f"{keyword} in a migration that runs in a transaction would end that transaction part-way,"
                    " so a later failure could no longer roll the whole file back. Remove it, or put"
                    " '-- +goose NO TRANSACTION' at the top of the file",
                    line=statement.line + statement.sql[:offset].count("\n"),
                )
