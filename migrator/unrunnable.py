"""Statements that could never run as written, refused before anything runs.

goose sends them anyway and fails part-way through a run, after the files before them
were applied; or, for ``COPY ... FROM STDIN``, waits for ever for rows it never sends.
PostgreSQL's own grammar (pg_grammar.py) finds them: syntax errors, commands that cannot run
inside the transaction block they would run in, and ``COPY`` to or from the client. Each
refusal names the line, the cause and the fix.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from migrator.errors import ParseError
from migrator.pg_grammar import ENDS_TRANSACTION, Command, GrammarError, Kind, Reading

if TYPE_CHECKING:
    from migrator.parser import ParsedMigration

# libpg_query's words where a statement stops before the grammar says it may: what goose's
# semicolon rule leaves of a function body, a DO block or a BEGIN ATOMIC body.
_CUT_SHORT = ("unterminated ", "syntax error at end of input")
_NEAR = re.compile(r'(at or near ")(.*)("\Z)', re.DOTALL)
_NEAR_SHOWN = 60


def refuse_unrunnable(parsed: ParsedMigration, reading: Reading) -> None:
    """ParseError for the first statement, by line, that could never run as written."""
    problems = [_grammar_problem(parsed, error) for error in reading.errors]
    problems += [found for c in reading.commands if (found := _command_problem(parsed, reading, c)) is not None]
    if problems:
        raise min(problems, key=lambda p: p.line or 0)


def _one_line(message: str) -> str:
    """The grammar's message on one line, its quote of the SQL cut short (an unterminated
    string's quote runs to the end of the statement)."""

    def shorten(near: re.Match[str]) -> str:
        quoted = near.group(2)
        return near.group(1) + (quoted if len(quoted) <= _NEAR_SHOWN else quoted[: _NEAR_SHOWN - 3] + "...") + '"'

    return " ".join(_NEAR.sub(shorten, message).split())


def _grammar_problem(parsed: ParsedMigration, error: GrammarError) -> ParseError:
    statement = parsed.statements[error.statement - 1]
    said = _one_line(error.message)
    if not statement.block and error.message.startswith(_CUT_SHORT):
        last = statement.line + statement.sql.count("\n")
        return ParseError(
            f"{said}: goose ends a statement at the first line whose last word ends with ';' (line"
            f" {last} here), which cut statement {error.statement} short. A function body, DO block or BEGIN"
            " ATOMIC body with ';' inside must stand between '-- +goose StatementBegin' and"
            " '-- +goose StatementEnd'",
            line=error.line,
        )
    return ParseError(
        f"{said}: PostgreSQL would refuse statement {error.statement} part-way through the run; fix the SQL",
        line=error.line,
    )


def _command_problem(parsed: ParsedMigration, reading: Reading, command: Command) -> ParseError | None:
    match command.kind:
        case Kind.COPY_FROM_CLIENT:
            return ParseError(
                f"{command.name} reads its rows from the client, and goose sends none: goose would wait here for"
                " ever. Load the rows with INSERT ... VALUES, or COPY FROM a file on the database server",
                line=command.line,
            )
        case Kind.COPY_TO_CLIENT if not command.alone:
            return ParseError(
                f"{command.name} shares statement {command.statement} with other commands: the migrator can discard"
                " a COPY's rows only when it is a statement of its own (goose discards them either way). Give it"
                " a statement of its own, or remove it: it changes nothing",
                line=command.line,
            )
        case Kind.OUTSIDE_TRANSACTION if command.in_block:
            where = _block(parsed, reading, command)
            return ParseError(f"{command.name} cannot run inside a transaction block, {where}", line=command.line)
    return None


def _block(parsed: ParsedMigration, reading: Reading, command: Command) -> str:
    """Which transaction block the command would run in, and how to take it out of it."""
    if not command.alone:
        return (
            f"and PostgreSQL runs the commands of statement {command.statement} in one (several commands in one"
            " statement, as in a StatementBegin/StatementEnd block): goose would fail here. Give it a statement of"
            " its own" + (", in a file with '-- +goose NO TRANSACTION'" if parsed.use_tx else "")
        )
    before = [
        c
        for c in reading.commands[: reading.commands.index(command)]
        if c.kind is Kind.BEGIN or c.kind in ENDS_TRANSACTION
    ]
    opener = before[-1] if before else None
    if opener is None:
        return (
            "and this file runs in one: goose would fail here, part-way through the run. Put"
            " '-- +goose NO TRANSACTION' at the top of the file, or move the statement into a file of its own"
            " that has it"
        )
    return (
        f"and the file's own {opener.name} at line {opener.line} opened one: goose would fail here. End that"
        f" transaction (COMMIT) before line {command.line}"
    )
