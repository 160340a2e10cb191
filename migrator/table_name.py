"""A goose table's name as goose's SQL reads it: ``table`` or ``schema.table``, each part
bare (folded to lower case) or double-quoted. Apart from the store so that reading the
command line imports no psycopg: only a session turns the name into an identifier."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrator.errors import InputError

if TYPE_CHECKING:
    from psycopg import sql

DEFAULT_TABLE = "_migrations"
_ASCII_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# One name part: "quoted" (with "" for a quote, kept as written) or bare (folded to lower case).
_PART = r'"(?:[^"]|"")+"|[^".]+'
_QUALIFIED = re.compile(rf"(?P<first>{_PART})(?:\.(?P<second>{_PART}))?")
# PostgreSQL cuts longer identifiers to 63 bytes, so a long name and the names derived from
# it (the ledger's) could silently become one and the same table.
MAX_IDENTIFIER_BYTES = 63
DERIVED_SUFFIXES = ("_ledger",)


def _unquote(part: str) -> str:
    if part.startswith('"'):
        return part[1:-1].replace('""', '"')
    return part.translate(_ASCII_UPPER_TO_LOWER)


@dataclass(frozen=True)
class TableName:
    """goose's version table, maybe schema-qualified; the tables beside it take its schema."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> TableName:
        """``table`` or ``schema.table``, each part bare or double-quoted, read as PostgreSQL
        reads the name goose writes into its SQL unquoted."""
        match = _QUALIFIED.fullmatch(text)
        if match is None:
            raise InputError(f"table name {text!r} must be 'table' or 'schema.table' (parts may be \"quoted\")")
        first, second = _unquote(match["first"]), match["second"] and _unquote(match["second"])
        schema, name = (first, second) if second else (None, first)
        longest = max(len(name.encode()) + len(suffix.encode()) for suffix in ("", *DERIVED_SUFFIXES))
        if longest > MAX_IDENTIFIER_BYTES or len((schema or "").encode()) > MAX_IDENTIFIER_BYTES:
            allowed = MAX_IDENTIFIER_BYTES - max(len(suffix.encode()) for suffix in DERIVED_SUFFIXES)
            raise InputError(
                f"table name {text!r} is too long: the migrator's ledger table is named after it with"
                f" '_ledger' appended, and PostgreSQL cuts names at 63 bytes; use at most {allowed} bytes"
            )
        return cls(schema, name)

    @property
    def identifier(self) -> sql.Identifier:
        # Only a session asks for it: a command that never connects imports no psycopg.
        from psycopg import sql  # noqa: PLC0415

        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def __str__(self) -> str:
        parts = (self.schema, self.name) if self.schema else (self.name,)
        return ".".join(p if re.fullmatch(r"[a-z_][a-z0-9_$]*", p) else '"' + p.replace('"', '""') + '"' for p in parts)
