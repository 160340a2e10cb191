"""The longest line a migration may hold, at goose's own edge, checked against the real goose.

goose scans files with a ``bufio.Scanner`` over a 4 MiB buffer (v3.29.0
``internal/sqlparser/parser.go``, ``scanBufSize``): a line and its newline must fit, so goose
refuses every file with a line of 4 MiB or more, and the migrator must refuse the same files,
naming the line, before anything runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migrator.errors import ParseError
from migrator.parser import Direction, parse_file
from tests.goose_interop import tool

GOOSE_SCANNER_BUFFER = 4 * 1024 * 1024
HEADER = "-- +goose Up\n"


def statement_of(size: int, character: str) -> str:
    """``SELECT '…';`` of exactly ``size`` UTF-8 bytes, filled with ``character`` as far as it goes."""
    frame = "SELECT '';"
    wide = (size - len(frame)) // len(character.encode())
    text = frame[:-2] + character * wide
    text += "x" * (size - len(text.encode()) - 2) + "';"
    assert len(text.encode()) == size
    return text


@pytest.mark.parametrize(
    ("size", "ending", "character"),
    [
        (GOOSE_SCANNER_BUFFER - 1, "\n", "x"),
        (GOOSE_SCANNER_BUFFER, "\n", "x"),
        (GOOSE_SCANNER_BUFFER - 1, "", "x"),
        (GOOSE_SCANNER_BUFFER, "", "x"),
        # The CR of a CRLF ending is part of goose's line: one byte less of statement fits.
        (GOOSE_SCANNER_BUFFER - 2, "\r\n", "x"),
        (GOOSE_SCANNER_BUFFER - 1, "\r\n", "x"),
        # Four bytes a character: a line of a quarter as many characters is already too long.
        (GOOSE_SCANNER_BUFFER, "\n", "\U0001f600"),
    ],
    ids=["LF 4MiB-1", "LF 4MiB", "last 4MiB-1", "last 4MiB", "CRLF 4MiB-1 with CR", "CRLF 4MiB with CR", "4-byte 4MiB"],
)
def test_a_line_goose_cannot_scan_is_refused_and_one_it_can_is_kept(
    tmp_path: Path, size: int, ending: str, character: str
) -> None:
    line = statement_of(size, character)
    path = tmp_path / "00001_long.sql"
    path.write_bytes((HEADER + line + ending).encode())
    too_long = size + len(ending.rstrip("\n")) >= GOOSE_SCANNER_BUFFER

    goose = subprocess.run(
        [str(tool("goose")), "-dir", str(tmp_path), "validate"], capture_output=True, text=True, check=False
    )
    assert (goose.returncode != 0) == too_long, goose.stderr
    if too_long:
        assert "token too long" in goose.stderr
        with pytest.raises(ParseError) as refused:
            parse_file(path, Direction.UP, env={})
        assert refused.value.line == 2
        assert "4 MiB" in str(refused.value)
    else:
        [statement] = parse_file(path, Direction.UP, env={}).statements
        assert statement.sql == line
