"""goose's own parser test vectors, reproduced byte for byte, and the parser's error contract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.errors import ParseError
from migrator.parser import Direction, parse_file, parse_sql
from tests.support import REPO, unavailable

# goose's vectors are goose's (MIT), kept beside the checkout rather than in it.
# ``../shared`` beside the checkout; MIGRATOR_SHARED_DIR when the tests run from a copy (mutmut's).
SHARED = Path(os.environ.get("MIGRATOR_SHARED_DIR") or REPO.parent / "shared")
VECTORS = SHARED / "conformance" / "goose-sqlparser"
ENVSUB_ENV = {"GOOSE_ENV_REGION": "us_east_", "GOOSE_ENV_SET_BUT_EMPTY_VALUE": "", "GOOSE_ENV_NAME": "foo"}
# Statement counts from the vectors' README, so a lost golden file cannot pass unnoticed.
EXPECTED_COUNTS = {
    ("valid-up", "test01", "up"): 3, ("valid-up", "test02", "up"): 1, ("valid-up", "test03", "up"): 1,
    ("valid-up", "test04", "up"): 3, ("valid-up", "test05", "up"): 2, ("valid-up", "test06", "up"): 5,
    ("valid-up", "test07", "up"): 1, ("valid-up", "test08", "up"): 6, ("valid-up", "test09", "up"): 1,
    ("envsub", "test01", "up"): 4, ("envsub", "test01", "down"): 1,
    ("envsub", "test02", "up"): 3, ("envsub", "test02", "down"): 0,
    ("envsub", "test03", "up"): 1, ("envsub", "test03", "down"): 0,
}  # fmt: skip


@pytest.fixture(scope="module")
def vectors() -> Path:
    """The vectors' folder; only the tests that read it skip (or, in CI, fail) without it."""
    if not VECTORS.is_dir():
        unavailable(
            f"goose's parser vectors are not at {VECTORS}: put the folder shared/conformance/goose-sqlparser "
            "(goose's parser test data, kept outside the repository) beside this checkout"
        )
    return VECTORS


@pytest.mark.parametrize(("group", "case", "direction"), sorted(EXPECTED_COUNTS))
def test_valid_vectors_reproduce_goose_byte_for_byte(vectors: Path, group: str, case: str, direction: str) -> None:
    """goose's grammar alone: some vectors hold SQL PostgreSQL refuses (a trailing comma in a
    column list), which parse_file's check with PostgreSQL's grammar refuses in turn."""
    folder = vectors / group / case
    parsed = parse_sql((folder / "input.sql").read_text(), Direction(direction), env=ENVSUB_ENV)
    goldens = sorted(folder.glob(f"*.{direction}.golden.sql"))
    assert len(goldens) == EXPECTED_COUNTS[(group, case, direction)]
    assert [s.sql.encode() for s in parsed.statements] == [g.read_bytes() for g in goldens]


@pytest.mark.parametrize("name", ["a.sql", "b.sql", "c.sql", "d.sql"])
def test_invalid_vectors_are_rejected_with_file_and_line(vectors: Path, name: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_file(vectors / "invalid" / "up" / name, Direction.UP)
    assert caught.value.path is not None
    assert caught.value.path.name == name
    assert caught.value.line is not None
    assert "semicolon" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "use_tx"),
    [("00001_create_users_table.sql", True), ("00002_rename_root.sql", True), ("00003_no_transaction.sql", False)],
)
def test_transaction_mode_vectors(vectors: Path, name: str, use_tx: bool) -> None:
    assert parse_file(vectors / "valid-txn" / name, Direction.UP).use_tx is use_tx


def test_required_variable_names_variable_and_message() -> None:
    text = "-- +goose ENVSUB ON\n-- +goose Up\nSELECT '${SOME_UNSET_VAR?required env var not set}';\n"
    with pytest.raises(ParseError) as caught:
        parse_sql(text, Direction.UP, env={})
    assert "SOME_UNSET_VAR" in str(caught.value)
    assert "required env var not set" in str(caught.value)
    assert caught.value.line == 3


def test_envsub_off_by_default_keeps_dollars() -> None:
    text = "-- +goose Up\nSELECT '$HOME ${HOME}';\n"
    assert parse_sql(text, Direction.UP, env={"HOME": "/root"}).statements[0].sql == "SELECT '$HOME ${HOME}';"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "<input>: no '-- +goose Up' annotation: every migration must start with one", None),
        ("-- just a comment\n\n", "<input>: no '-- +goose Up' annotation: every migration must start with one", None),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n",
            "<input>: '-- +goose StatementBegin' at line 2 has no '-- +goose StatementEnd'",
            None,
        ),
        (
            "-- +goose Up\n-- +goose StatementEnd\n",
            "<input>:2: '-- +goose StatementEnd' without a '-- +goose StatementBegin'",
            2,
        ),
        ("-- +goose Up\n-- +goose Up\n", "<input>:2: duplicate '-- +goose Up' annotation", 2),
        (
            "-- +goose Down\nSELECT 1;\n",
            "<input>:1: '-- +goose Down' must follow '-- +goose Up' and stand outside any StatementBegin block",
            1,
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementBegin\n",
            "<input>:3: '-- +goose StatementBegin' must follow '-- +goose Up' or '-- +goose Down' and cannot be nested",
            3,
        ),
        (
            "-- +goose Up\nSELECT 1\n-- +goose Down\n",
            "<input>:2: statement is not terminated by a semicolon before '-- +goose Down' (missing ';'?)",
            2,
        ),
        (
            "-- +goose Up\nSELECT 1\n",
            "<input>:2: statement is not terminated by a semicolon before end of file (missing ';'?)",
            2,
        ),
        (
            "-- +goose Up\n  -- +goose StatementBegin\n",
            "<input>:2: annotation '-- +goose StatementBegin' must not be indented",
            2,
        ),
        (
            "-- +goose Up\n\t-- +goose StatementBegin\n",
            "<input>:2: annotation '-- +goose StatementBegin' must not be indented",
            2,
        ),
        (
            "-- +goose Up\n-- +goose Sideways\n",
            "<input>:2: unknown annotation 'Sideways' (known: Up, Down, StatementBegin, StatementEnd, NO TRANSACTION,"
            " ENVSUB ON, ENVSUB OFF)",
            2,
        ),
        ("-- +goose Up\n-- +goose\n", "<input>:2: empty '-- +goose' annotation", 2),
        (
            "-- +goose Up -- +goose Down\n",
            "<input>:1: more than one '+goose' annotation on the line: '-- +goose Up -- +goose Down'",
            1,
        ),
        ("SELECT 0;\n-- +goose Up\n", "<input>:1: SQL before the '-- +goose Up' annotation", 1),
        (
            "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\nSELECT 1;\n",
            "<input>:4: this line follows the empty StatementBegin/StatementEnd block that ends at line 3; goose would"
            " silently drop it and run nothing more of this section. Remove the empty block",
            4,
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\n-- a comment goose skips\n\n"
            "CREATE TABLE t (\n\n    id int\n);\nSELECT 2;\n-- +goose Down\nSELECT 3;\n",
            "<input>:6: this line follows the empty StatementBegin/StatementEnd block that ends at line 3; goose would"
            " silently drop it and go on with line 8 ('id int') as if it were not there. Remove the empty block",
            6,
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\nSELECT 1;\n-- +goose StatementBegin\n"
            "SELECT 'a ' || repeat('b', 70) || ' a long first line that the message cuts short';\n"
            "-- +goose StatementEnd\n",
            "<input>:4: this line follows the empty StatementBegin/StatementEnd block that ends at line 3; goose would"
            " silently drop it and go on with line 6 (\"SELECT 'a ' || repeat('b', 70) || ' a long first line tha...\")"
            " as if it were not there. Remove the empty block",
            4,
        ),
    ],
)
def test_bad_input_names_the_cause_and_line(text: str, message: str, line: int | None) -> None:
    with pytest.raises(ParseError) as caught:
        parse_sql(text, Direction.UP, env={})
    assert str(caught.value) == message
    assert caught.value.line == line


def test_annotations_are_case_insensitive_and_comment_lines_are_kept_inside_statements() -> None:
    text = (
        "-- +GOOSE up is a comment, not an annotation\n-- +goose UP\n--   +goose no transaction\nSELECT 1 -- one\n  ;\n"
    )
    parsed = parse_sql(text, Direction.UP, env={})
    assert parsed.use_tx is False
    assert [s.sql for s in parsed.statements] == ["SELECT 1 -- one\n  ;"]
    assert parsed.statements[0].line == 4


def test_semicolon_inside_trailing_comment_does_not_end_statement() -> None:
    text = "-- +goose Up\nSELECT 1 -- not the end;\n, 2;\n"
    assert [s.sql for s in parse_sql(text, Direction.UP, env={}).statements] == ["SELECT 1 -- not the end;\n, 2;"]


@pytest.mark.parametrize("direction", list(Direction))
def test_lines_of_only_blanks_after_the_last_statement_are_not_an_unfinished_one(direction: Direction) -> None:
    """goose 3 applies and rolls back this file; they are buffered, being neither empty nor comments."""
    text = "-- +goose Up\nSELECT 1;\n  \n\t\n-- +goose Down\nSELECT 2;\n \n\t \n"
    parsed = parse_sql(text, direction, env={})
    assert [s.sql for s in parsed.statements] == ["SELECT 1;" if direction is Direction.UP else "SELECT 2;"]


def test_crlf_line_endings_parse_like_lf() -> None:
    crlf = "-- +goose Up\r\nCREATE TABLE t (id int);\r\n-- +goose Down\r\nDROP TABLE t;\r\n"
    assert [s.sql for s in parse_sql(crlf, Direction.DOWN, env={}).statements] == ["DROP TABLE t;"]
    # goose's scanner drops each line's CR, so a literal spanning lines holds LF only.
    spanning = "-- +goose Up\r\nINSERT INTO t VALUES ('a\r\nb');\r\n"
    assert [s.sql for s in parse_sql(spanning, Direction.UP, env={}).statements] == ["INSERT INTO t VALUES ('a\nb');"]


def test_invalid_utf8_is_a_located_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "1_bad.sql"
    path.write_bytes(b"-- +goose Up\nSELECT '\xff';\n")
    with pytest.raises(ParseError) as caught:
        parse_file(path, Direction.UP)
    assert caught.value.line == 2
    assert str(caught.value) == "1_bad.sql:2: not valid UTF-8"


# Lines built from the grammar's own pieces reach far more states than random text.
_PIECES = st.sampled_from(
    [
        "-- +goose Up", "-- +goose Down", "-- +goose StatementBegin", "-- +goose StatementEnd",
        "-- +goose NO TRANSACTION", "-- +goose ENVSUB ON", "-- +goose ENVSUB OFF", "-- +goose up",
        " -- +goose Up", "-- +goose bogus", "", "  ", "-- comment", "SELECT 1;", "SELECT 1", ");",
        "SELECT '$X ${Y:-d} ${Z?no} $$ \\$ ${W:1:2} $' ;", "$$ LANGUAGE plpgsql;", "${", "$1", "x -- y;",
    ]
)  # fmt: skip
_LINES = st.lists(st.one_of(_PIECES, st.text(max_size=30)), max_size=25)


@settings(max_examples=400, deadline=None)
@given(lines=_LINES, direction=st.sampled_from(list(Direction)), ending=st.sampled_from(["\n", "\r\n", ""]))
def test_parser_returns_statements_or_its_own_error(lines: list[str], direction: Direction, ending: str) -> None:
    text = "\n".join(lines) + ending
    refusal: ParseError | None = None
    try:
        parsed = parse_sql(text, direction, env={"X": "x", "Y": ""})
    except ParseError as exc:
        refusal = exc
    if refusal is not None:
        assert str(refusal), "a refusal says why"
        return
    for statement in parsed.statements:
        assert statement.sql == statement.sql.strip(" \t\n\r")
        assert 1 <= statement.line <= max(1, text.count("\n") + 1)
