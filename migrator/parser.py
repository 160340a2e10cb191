"""The goose SQL migration grammar, reproduced statement for statement.

A file is read line by line. ``-- +goose`` annotations (case-insensitive, no leading
whitespace) open the Up and Down sections, wrap multi-statement bodies in
StatementBegin/StatementEnd, switch off the transaction or switch environment
substitution on and off. Outside a StatementBegin block a statement ends on a line whose
last word before any ``--`` comment ends with ``;``. Comments and blank lines before a
statement are dropped; inside a statement they are kept. Each statement is trimmed.

Where goose silently drops SQL (a statement line straight after an empty
StatementBegin/StatementEnd block) this parser refuses the file instead. ``parse_file`` then
reads every statement with PostgreSQL's own grammar (pg_grammar.py) and refuses what could
never run as written (unrunnable.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from migrator.envsub import SubstitutionError, substitute
from migrator.errors import ParseError
from migrator.pg_grammar import Command, read
from migrator.unrunnable import refuse_unrunnable

# Go's unicode.IsSpace set, which goose's TrimSpace and word splitting use; Python's own
# notion of whitespace also takes in \x1c-\x1f, which Go does not.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
# Where a word that starts a comment begins: at the line's start or after Go whitespace.
_COMMENT_WORD = re.compile(f"(?:^|(?<=[{re.escape(_GO_SPACE)}]))--")

# goose reads with a bufio.Scanner whose buffer is 4 MiB: a line and the newline after it must
# fit, so a line of 4 MiB or more (a CR before its LF counted) fails there.
MAX_LINE_BYTES = 4 * 1024 * 1024
BOM = "\ufeff"


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class _Annotation(StrEnum):
    UP = "Up"
    DOWN = "Down"
    STATEMENT_BEGIN = "StatementBegin"
    STATEMENT_END = "StatementEnd"
    NO_TRANSACTION = "NO TRANSACTION"
    ENVSUB_ON = "ENVSUB ON"
    ENVSUB_OFF = "ENVSUB OFF"


_ANNOTATIONS = {a.value.casefold(): a for a in _Annotation}


@dataclass(frozen=True)
class Statement:
    """One statement as goose's grammar yields it, with the line where it starts."""

    sql: str
    line: int  # where the statement's first line stands in its file
    block: bool = False  # written between StatementBegin and StatementEnd


@dataclass(frozen=True)
class ParsedMigration:
    """One direction of a file: its statements, whether it runs in a transaction, what the grammar found."""

    statements: tuple[Statement, ...]
    use_tx: bool
    sha256: str = ""  # of the file's bytes, when parsed from a file
    # What PostgreSQL's grammar found in the statements (pg_grammar.py), when parsed from a file.
    commands: tuple[Command, ...] = ()
    # The statements that are not exactly one command (pg_grammar.Reading); None when unread.
    not_one_command: tuple[int, ...] | None = None


def go_trim(text: str) -> str:
    return text.strip(_GO_SPACE)


def parse_sql(text: str, direction: Direction, env: Mapping[str, str] | None = None) -> ParsedMigration:
    """Split a migration's text into the statements of one direction, as goose does; ``env``
    holds the variables an ENVSUB section substitutes (none unless given: the library reads no
    environment, the command line passes its own)."""
    return _Parser(direction, {} if env is None else env).run(text)


def parse_file(path: Path, direction: Direction, env: Mapping[str, str] | None = None) -> ParsedMigration:
    """Parse one direction of a file and read its statements with PostgreSQL's grammar,
    refusing what could never run as written."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParseError("not valid UTF-8", path=path, line=line) from None
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror}", path=path) from None
    sha256 = hashlib.sha256(raw).hexdigest()
    del raw  # a seed file is large: its bytes need not outlive its text
    if text.startswith(BOM):
        # goose does not strip it either: its first annotation would go unseen.
        raise ParseError("the file starts with a UTF-8 byte order mark (BOM); save it without one", path=path, line=1)
    try:
        parsed = parse_sql(text, direction, env)
        reading = read(parsed.statements, use_tx=parsed.use_tx)
        refuse_unrunnable(parsed, reading)
    except ParseError as exc:
        raise exc.located(path) from None
    return replace(parsed, sha256=sha256, commands=reading.commands, not_one_command=reading.not_one_command)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines as Go's bufio.ScanLines yields them: split on LF, one trailing CR dropped. One at
    a time: a list of every line would cost as much again as the text."""
    start, number = 0, 0
    # Each line's checks cost as much as reading it: only a text that could fail one checks lines.
    nul = text.find("\0")
    nul_line = -1 if nul < 0 else text.count("\n", 0, nul) + 1
    long_lines = len(text) * 4 >= MAX_LINE_BYTES  # a character is at most 4 bytes
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        line, start, number = text[start:end], end + 1, number + 1
        # Encoding only lines that could reach the limit.
        if long_lines and len(line) * 4 >= MAX_LINE_BYTES and len(line.encode()) >= MAX_LINE_BYTES:
            raise ParseError("line of 4 MiB or more: goose reads lines of at most 4 MiB - 1 byte", line=number)
        if number == nul_line:
            # libpq sends statements as C strings: everything after a NUL would silently vanish.
            raise ParseError("NUL byte (\\x00) in the file: PostgreSQL cannot receive it", line=number)
        yield number, line.removesuffix("\r")


def _ends_statement(line: str) -> bool:
    """Whether the last word before any word that starts with ``--`` ends with ``;``."""
    comment = _COMMENT_WORD.search(line)
    return line[: comment.start() if comment else len(line)].rstrip(_GO_SPACE).endswith(";")


def _annotation(line: str, number: int) -> _Annotation:
    if line.startswith((" ", "\t")):
        raise ParseError(f"annotation {line.strip()!r} must not be indented", line=number)
    command = line.replace("--", "").replace("+goose", "", 1)
    if "+goose" in command:
        raise ParseError(f"more than one '+goose' annotation on the line: {line!r}", line=number)
    command = go_trim(command)
    if not command:
        raise ParseError("empty '-- +goose' annotation", line=number)
    found = _ANNOTATIONS.get(command.casefold())
    if found is None:
        known = ", ".join(a.value for a in _Annotation)
        raise ParseError(f"unknown annotation {command!r} (known: {known})", line=number)
    return found


class _Parser:
    def __init__(self, direction: Direction, env: Mapping[str, str]):
        self.direction = direction
        self.env = env
        self.section: Direction | None = None
        self.block_start: int | None = None  # line of the open StatementBegin
        self.empty_block_end: int | None = None  # see _take_sql
        self.dropped: tuple[int, int] | None = None  # the line goose drops, and the empty block's end
        self.use_tx = True
        self.envsub = False
        self.buffer: list[str] = []
        self.buffer_start = 0
        self.statements: list[Statement] = []

    def run(self, text: str) -> ParsedMigration:
        for number, line in _lines(text):
            trimmed = go_trim(line)
            if self.section is None and not trimmed:
                continue
            comment = trimmed.startswith("--")
            if comment and "+goose" in line:
                self._apply(_annotation(line, number), number)
            elif self.buffer or not (line == "" or comment):
                self._take_sql(line, number)
        if self.section is None:
            raise ParseError("no '-- +goose Up' annotation: every migration must start with one")
        if self.block_start is not None:
            raise ParseError(f"'-- +goose StatementBegin' at line {self.block_start} has no '-- +goose StatementEnd'")
        self._refuse_dropped()
        self._refuse_unfinished("end of file")
        return ParsedMigration(tuple(self.statements), self.use_tx)

    def _apply(self, annotation: _Annotation, number: int) -> None:
        match annotation:
            case _Annotation.UP:
                if self.section is not None:
                    raise ParseError("duplicate '-- +goose Up' annotation", line=number)
                self.section = Direction.UP
            case _Annotation.DOWN:
                if self.section is not Direction.UP or self.block_start is not None:
                    raise ParseError(
                        "'-- +goose Down' must follow '-- +goose Up' and stand outside any StatementBegin block",
                        line=number,
                    )
                self._refuse_dropped()
                self._refuse_unfinished("'-- +goose Down'")
                self.section = Direction.DOWN
                self.empty_block_end = None
            case _Annotation.STATEMENT_BEGIN:
                if self.section is None or self.block_start is not None:
                    raise ParseError(
                        "'-- +goose StatementBegin' must follow '-- +goose Up' or '-- +goose Down' "
                        "and cannot be nested",
                        line=number,
                    )
                self.block_start = number
                self.empty_block_end = None
            case _Annotation.STATEMENT_END:
                if self.block_start is None:
                    raise ParseError("'-- +goose StatementEnd' without a '-- +goose StatementBegin'", line=number)
                self.block_start = None
                if self.buffer:
                    self._emit(block=True)
                else:
                    self.empty_block_end = number
            case _Annotation.NO_TRANSACTION:
                self.use_tx = False
            case _Annotation.ENVSUB_ON:
                self.envsub = True
            case _Annotation.ENVSUB_OFF:
                self.envsub = False

    def _take_sql(self, line: str, number: int) -> None:
        if self.section is None:
            raise ParseError("SQL before the '-- +goose Up' annotation", line=number)
        if self.empty_block_end is not None and self.section is self.direction:
            # goose drops this line without a word (and sends an empty statement in its place);
            # the refusal waits for what goose runs next, which it names.
            self.dropped, self.empty_block_end = (number, self.empty_block_end), None
            return
        if self.envsub:
            try:
                line = substitute(line, self.env)
            except SubstitutionError as exc:
                raise ParseError(f"ENVSUB: {exc}", line=number) from None
        if self.section is not self.direction:
            return
        if not self.buffer:
            self.buffer_start = number
        self.buffer.append(line)
        if self.block_start is None and _ends_statement(line):
            self._emit(block=False)

    def _emit(self, *, block: bool) -> None:
        self._refuse_dropped()
        self.statements.append(Statement(go_trim("\n".join(self.buffer)), self.buffer_start, block))
        self.buffer.clear()

    def _refuse_dropped(self) -> None:
        """Refuse the line goose would drop after an empty block, naming what goose runs next:
        the statement now in the buffer (the rest of the dropped line's own, when it began one)."""
        if self.dropped is None:
            return
        number, block_end = self.dropped
        written = [(offset, go_trim(line)) for offset, line in enumerate(self.buffer) if go_trim(line)]
        if written:
            offset, first = written[0]
            quoted = first if len(first) <= 60 else first[:57] + "..."
            then = f"go on with line {self.buffer_start + offset} ({quoted!r}) as if it were not there"
        else:
            then = "run nothing more of this section"
        raise ParseError(
            f"this line follows the empty StatementBegin/StatementEnd block that ends at line {block_end};"
            f" goose would silently drop it and {then}. Remove the empty block",
            line=number,
        )

    def _refuse_unfinished(self, where: str) -> None:
        if self.buffer and go_trim("\n".join(self.buffer)):
            raise ParseError(
                f"statement is not terminated by a semicolon before {where} (missing ';'?)",
                line=self.buffer_start,
            )
