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
from tests.support.goose_interop import tool

GOOSE_SCANNER_BUFFER = 4 * 1024 * 1024
HEADER = "-- +goose Up\n"


def statement_of(size: int) -> str:
    """``SELECT 'xx…';`` of exactly ``size`` bytes."""
    return "SELECT '" + "x" * (size - len("SELECT '';")) + "';"


LINES = {
    "LF 4MiB-1": (statement_of(GOOSE_SCANNER_BUFFER - 1), "\n"),
    "LF 4MiB": (statement_of(GOOSE_SCANNER_BUFFER), "\n"),
    "last 4MiB-1": (statement_of(GOOSE_SCANNER_BUFFER - 1), ""),
    "last 4MiB": (statement_of(GOOSE_SCANNER_BUFFER), ""),
    # The CR of a CRLF ending is part of goose's line: one byte less of statement fits.
    "CRLF 4MiB-1 with CR": (statement_of(GOOSE_SCANNER_BUFFER - 2), "\r\n"),
    "CRLF 4MiB with CR": (statement_of(GOOSE_SCANNER_BUFFER - 1), "\r\n"),
    # Four bytes a character: a quarter as many characters already fill the buffer.
    "4MiB of 4-byte characters": ("\U0001f600" * (GOOSE_SCANNER_BUFFER // 4), "\n"),
}


@pytest.mark.parametrize(("line", "ending"), LINES.values(), ids=LINES.keys())
def test_a_line_goose_cannot_scan_is_refused_and_one_it_can_is_kept(tmp_path: Path, line: str, ending: str) -> None:
    path = tmp_path / "00001_long.sql"
    path.write_bytes((HEADER + line + ending).encode())
    too_long = len((line + ending).removesuffix("\n").encode()) >= GOOSE_SCANNER_BUFFER

    goose = subprocess.run(
        [str(tool("goose")), "-dir", str(tmp_path), "validate"], capture_output=True, text=True, check=False
    )
    assert (goose.returncode != 0) == too_long, goose.stderr
    if too_long:
        assert "token too long" in goose.stderr
        with pytest.raises(ParseError) as refused:
            parse_file(path, Direction.UP, env={})
        assert (refused.value.line, refused.value.reason) == (
            2,
            "line of 4 MiB or more: goose reads lines of at most 4 MiB - 1 byte",
        )
    else:
        [statement] = parse_file(path, Direction.UP, env={}).statements
        assert statement.sql == line
