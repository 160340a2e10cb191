"""PostgreSQL's own grammar over the statements goose's grammar yields: the top-level
commands in each that matter before anything runs, and the statements it cannot read.

goose sends each statement as one simple query, and PostgreSQL runs every command in it.
These commands change how a file runs, or make it fail part-way whatever the database
holds: transaction control (``BEGIN``, ``COMMIT``, ...), commands that cannot run inside a
transaction block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...), ``COPY`` to or from the
client, and syntax errors. ``BEGIN`` in a function body, a ``DO`` block or a ``BEGIN ATOMIC``
body is part of that command, not one of its own: only the grammar tells them apart.

Each statement is parsed once by libpg_query (pglast's C side), which returns where its
commands start and end and no syntax tree, so a 10 MB seed costs no Python objects. A
command's first keyword, and for DDL a word it must contain, rules out almost every
command; the few left, short as a rule, are parsed again to JSON and read from that.

The C parser still builds the whole tree in its own memory while it reads: about ten times
the statement (``python -m bench.memory``: one INSERT of every row of a seed). A statement
over GRAMMAR_LIMIT, a seed's INSERT as a rule, is split by PostgreSQL's scanner instead: its
quotes and comments are checked, its grammar is left to the server, which refuses it whole
(the file rolled back) rather than kill a migrator in a small container part-way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrator.parser import Statement


class Kind(StrEnum):
    BEGIN = "begin"  # BEGIN, START TRANSACTION
    COMMIT = "commit"  # COMMIT, END
    ROLLBACK = "rollback"  # ROLLBACK, ABORT
    PREPARE = "prepare"  # PREPARE TRANSACTION: ends the transaction, leaving it prepared
    OUTSIDE_TRANSACTION = "outside transaction"  # cannot run inside a transaction block
    COPY_FROM_CLIENT = "copy from client"  # COPY ... FROM STDIN
    COPY_TO_CLIENT = "copy to client"  # COPY ... TO STDOUT


ENDS_TRANSACTION = frozenset({Kind.COMMIT, Kind.ROLLBACK, Kind.PREPARE})


@dataclass(frozen=True)
class Command:
    """A top-level command that matters before anything runs."""

    statement: int  # the number of the goose statement holding it, from 1
    line: int  # the file's line where it starts
    kind: Kind
    name: str  # as PostgreSQL names it: "COMMIT", "END", "CREATE INDEX CONCURRENTLY", "VACUUM"
    alone: bool  # the only command of its statement
    in_block: bool  # it runs inside a transaction block when the file runs as goose runs it
    chain: bool = False  # COMMIT or ROLLBACK AND CHAIN: a new transaction begins at once


@dataclass(frozen=True)
class GrammarError:
    """A statement PostgreSQL's grammar cannot read."""

    statement: int
    line: int
    message: str  # libpg_query's words, which are the server's


@dataclass(frozen=True)
class Reading:
    """What PostgreSQL's grammar found in one direction of a file."""

    commands: tuple[Command, ...]  # in the order they run
    errors: tuple[GrammarError, ...]
    # The statements that are not exactly one command (none, several, or a count the grammar
    # could not take): the extended protocol, and so a pipeline, takes one command per message.
    not_one_command: tuple[int, ...] = ()


# Words PostgreSQL 15 leaves free (pg_get_keywords() there) but pglast's newer grammar
# reserves more: a table column named system_user, a function named json_table. A syntax
# error at such a word, or right after it, is left for the server to judge.
NEWER_THAN_POSTGRESQL_15 = frozenset(
    {
        "json", "json_array", "json_arrayagg", "json_exists", "json_object", "json_objectagg", "json_query",
        "json_scalar", "json_serialize", "json_table", "json_value", "merge_action", "system_user",
    }
)  # fmt: skip

# The first keyword of every command that can matter; for DDL, also a word the command must
# contain. Anything else (SELECT, INSERT, CREATE TABLE, ...) is never parsed a second time.
_ALWAYS_READ = frozenset(
    {"begin", "start", "commit", "end", "rollback", "abort", "prepare", "vacuum", "reindex", "cluster", "discard",
     "copy"}
)  # fmt: skip
_READ_IF_IT_MENTIONS = {
    "create": ("concurrently", "database", "tablespace"),
    "drop": ("concurrently", "database", "tablespace"),
    "alter": ("concurrently", "system", "tablespace"),
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_LAST_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\W*\Z")
_NEAR = re.compile(r'at or near "([^"]*)"')
_COMMENT_MARK = re.compile(r"/\*|\*/")
GRAMMAR_LIMIT = 1 << 20  # characters of one statement read with the grammar; longer ones are scanned


def read(statements: Sequence[Statement], *, use_tx: bool) -> Reading:
    """The commands that matter and the grammar's errors, statement by statement. A file
    that runs in a transaction (``use_tx``) starts inside one, as goose opens it."""
    # pglast costs ~30 ms to import: only runs that parse files pay it, never a sealed no-op.
    from pglast import parser  # noqa: PLC0415

    commands: list[Command] = []
    errors: list[GrammarError] = []
    not_one_command: list[int] = []
    in_block = use_tx
    for number, statement in enumerate(statements, start=1):
        try:
            texts = parser.split(statement.sql, with_parser=len(statement.sql) <= GRAMMAR_LIMIT)
        except parser.ParseError as exc:
            not_one_command.append(number)
            message, location = exc.args
            if not _newer_keyword(statement.sql, message, location):
                at = len(statement.sql) if location is None else location
                errors.append(GrammarError(number, _line(statement, at), message))
            continue
        alone, offset = len(texts) == 1, 0
        if not alone:
            not_one_command.append(number)
        for text in texts:
            offset = statement.sql.find(text, offset)
            start, first = _first_word(text)
            found = _classify(text, first, parser)
            if found is not None:
                kind, name, chain = found
                line = _line(statement, offset + start)
                # Several commands in one simple query run in one implicit transaction block.
                command = Command(number, line, kind, name, alone, in_block or not alone, chain)
                commands.append(command)
                if kind is Kind.BEGIN:
                    in_block = True
                elif kind in ENDS_TRANSACTION:
                    in_block = chain
            offset += len(text)
    return Reading(tuple(commands), tuple(errors), tuple(not_one_command))


def statements_that(commands: Iterable[Command], *names: str) -> list[int]:
    """The numbers of the statements holding a command of one of ``names`` (as Command.name
    spells them, e.g. ``"CREATE INDEX CONCURRENTLY"``), in order, each once."""
    return sorted({c.statement for c in commands if c.name in names})


def _line(statement: Statement, offset: int) -> int:
    return statement.line + statement.sql.count("\n", 0, offset)


def _newer_keyword(sql: str, message: str, location: int | None) -> bool:
    """Whether a syntax error stands at, or right after, a word only pglast's newer grammar reserves."""
    near = _NEAR.search(message)
    preceding = _LAST_WORD.search(sql[:location]) if location is not None else None
    return any(found.group(1).lower() in NEWER_THAN_POSTGRESQL_15 for found in (near, preceding) if found)


def _first_word(text: str) -> tuple[int, str]:
    """Where the command's first keyword starts, and the keyword in lower case: after any
    comments, since libpg_query before PostgreSQL 18's starts a command where the previous
    one's ``;`` ended."""
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
        elif text.startswith("--", index):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end + 1
        elif text.startswith("/*", index):
            index = _comment_end(text, index)
        else:
            break
    word = _WORD.match(text, index)
    return index, word.group().lower() if word else ""


def _comment_end(text: str, start: int) -> int:
    """Where a ``/* ... */`` comment starting at ``start`` ends; PostgreSQL's nest."""
    depth = 0
    for mark in _COMMENT_MARK.finditer(text, start):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(text)


def _classify(text: str, first: str, parser: Any) -> tuple[Kind, str, bool] | None:
    mentions = _READ_IF_IT_MENTIONS.get(first)
    if first not in _ALWAYS_READ and not (mentions and any(word in text.lower() for word in mentions)):
        return None
    [node] = json.loads(parser.parse_sql_json(text))["stmts"]
    [(node_type, fields)] = node["stmt"].items()
    if node_type == "TransactionStmt":
        return _transaction(first, fields)
    outside = _outside_transaction(node_type, fields)
    if outside is not None:
        return Kind.OUTSIDE_TRANSACTION, outside, False
    if node_type == "CopyStmt" and "filename" not in fields:
        return (
            (Kind.COPY_FROM_CLIENT, "COPY FROM STDIN", False)
            if fields.get("is_from")
            else (Kind.COPY_TO_CLIENT, "COPY TO STDOUT", False)
        )
    return None


def _transaction(first: str, fields: dict[str, Any]) -> tuple[Kind, str, bool] | None:
    kind, chain = fields["kind"], bool(fields.get("chain"))
    written = first.upper() + (" AND CHAIN" if chain else "")  # COMMIT or END, ROLLBACK or ABORT
    found = {
        "TRANS_STMT_BEGIN": (Kind.BEGIN, "BEGIN"),
        "TRANS_STMT_START": (Kind.BEGIN, "START TRANSACTION"),
        "TRANS_STMT_COMMIT": (Kind.COMMIT, written),
        "TRANS_STMT_ROLLBACK": (Kind.ROLLBACK, written),
        "TRANS_STMT_PREPARE": (Kind.PREPARE, "PREPARE TRANSACTION"),
        "TRANS_STMT_COMMIT_PREPARED": (Kind.OUTSIDE_TRANSACTION, "COMMIT PREPARED"),
        "TRANS_STMT_ROLLBACK_PREPARED": (Kind.OUTSIDE_TRANSACTION, "ROLLBACK PREPARED"),
    }.get(kind)  # SAVEPOINT, RELEASE and ROLLBACK TO stay inside the transaction
    return None if found is None else (found[0], found[1], chain)


def _outside_transaction(node_type: str, fields: dict[str, Any]) -> str | None:
    """The name PostgreSQL 15 gives a command it refuses inside a transaction block
    (``PreventInTransactionBlock``), when this is one whatever the database holds."""
    match node_type:
        case "IndexStmt" if fields.get("concurrent"):
            return "CREATE INDEX CONCURRENTLY"
        case "DropStmt" if fields.get("concurrent") and fields.get("removeType") == "OBJECT_INDEX":
            return "DROP INDEX CONCURRENTLY"
        case "ReindexStmt":
            if _switched_on(_option(fields.get("params", []), "concurrently")):
                return "REINDEX CONCURRENTLY"
            target = fields["kind"].removeprefix("REINDEX_OBJECT_")
            return f"REINDEX {target}" if target in ("SCHEMA", "SYSTEM", "DATABASE") else None
        case "VacuumStmt" if fields.get("is_vacuumcmd"):
            return "VACUUM"
        case "CreatedbStmt":
            return "CREATE DATABASE"
        case "DropdbStmt":
            return "DROP DATABASE"
        case "AlterDatabaseStmt" if _option(fields.get("options", []), "tablespace") is not None:
            return "ALTER DATABASE SET TABLESPACE"
        case "CreateTableSpaceStmt":
            return "CREATE TABLESPACE"
        case "DropTableSpaceStmt":
            return "DROP TABLESPACE"
        case "AlterSystemStmt":
            return "ALTER SYSTEM"
        case "AlterTableStmt" if any(_detaches_concurrently(c) for c in fields.get("cmds", [])):
            return "ALTER TABLE ... DETACH CONCURRENTLY"
        case "DiscardStmt" if fields.get("target") == "DISCARD_ALL":
            return "DISCARD ALL"
        case "ClusterStmt" if "relation" not in fields:  # every clustered table, one transaction each
            return "CLUSTER"
    return None


def _option(options: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The option (a DefElem) called ``name``, if given."""
    return next((o["DefElem"] for o in options if o["DefElem"]["defname"] == name), None)


def _switched_on(option: dict[str, Any] | None) -> bool:
    """Whether a boolean option is given and not switched off: ``(CONCURRENTLY false)``, ``off``, ``0``."""
    if option is None:
        return False
    if "arg" not in option:
        return True  # given without a value: on
    argument = option["arg"]
    if "Integer" in argument:
        return bool(argument["Integer"].get("ival"))  # JSON leaves out a zero
    return str(argument["String"]["sval"]).lower() not in ("false", "off")


def _detaches_concurrently(command: dict[str, Any]) -> bool:
    fields = command["AlterTableCmd"]
    return fields.get("subtype") == "AT_DetachPartition" and bool(fields["def"]["PartitionCmd"].get("concurrent"))
