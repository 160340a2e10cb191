"""Statements that could never run as written are refused before anything runs (migrator/
unrunnable.py), each by file and line with its fix, where goose runs the files before them
and fails part-way, or waits for ever: shown here with the real goose on the same files."""

from __future__ import annotations

import subprocess

import pytest

from migrator.unrunnable import _one_line
from tests.support import MigrationDir, query, tables, versions, wait_until
from tests.support.cli_runner import run_cli
from tests.support.goose_interop import Tools, ok

FIRST = "-- +goose Up\nCREATE TABLE first (id int);\n-- +goose Down\nDROP TABLE first;\n"


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a run refused as bad input."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("migrator: error: "), result.stderr
    return lines[-1].removeprefix("migrator: error: ")


def validate_problem(migrations: MigrationDir, files: int = 2) -> str:
    """validate's report of the one bad file among ``files``, after checking its summary."""
    result = run_cli("validate", directory=migrations.path)
    assert result.returncode == 2, result.stdout + result.stderr
    problem, summary = result.stderr.strip().splitlines()
    assert summary == f"migrator: error: 1 of {files} migration(s) do not parse"
    return problem.removeprefix("migrator: ")


NO_TRANSACTION_FIX = (
    "and this file runs in one: goose would fail here, part-way through the run. Put '-- +goose NO TRANSACTION' at"
    " the top of the file, or move the statement into a file of its own that has it"
)
OUTSIDE = {
    "CREATE INDEX CONCURRENTLY first_id ON first (id);": "CREATE INDEX CONCURRENTLY",
    "VACUUM ANALYZE first;": "VACUUM",
    "CREATE DATABASE reporting;": "CREATE DATABASE",
    "REINDEX TABLE CONCURRENTLY first;": "REINDEX CONCURRENTLY",
}


@pytest.mark.parametrize("statement", sorted(OUTSIDE))
def test_what_can_never_run_in_a_transaction_is_refused_by_line_before_anything_runs(
    dsn: str, other_dsn: str, migrations: MigrationDir, statement: str
) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add("00002_outside.sql", f"-- +goose Up\nSELECT 1;\n\n{statement}\n-- +goose Down\nSELECT 1;\n")
    expected = f"00002_outside.sql:4: {OUTSIDE[statement]} cannot run inside a transaction block, {NO_TRANSACTION_FIX}"
    assert validate_problem(migrations) == expected
    for command in ("plan", "up"):
        assert refusal(run_cli(command, dsn=dsn, directory=migrations.path)) == expected
    assert tables(dsn) == set()  # not even goose's table
    # goose applies the file before it, then fails on it.
    goose = Tools(other_dsn, migrations.path).goose("up")
    assert goose.returncode == 1
    assert f"{OUTSIDE[statement]} cannot run inside a transaction block (SQLSTATE 25001)" in goose.stderr
    assert versions(other_dsn) == [0, 1]


def test_with_no_transaction_it_runs(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add(
        "00002_index.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY first_id ON first (id);\n"
        "-- +goose Down\nDROP INDEX CONCURRENTLY first_id;\n",
    )
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'first'") == [("first_id",)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "-- +goose NO TRANSACTION\n-- +goose Up\nBEGIN;\nCREATE TABLE t (id int);\n"
            "CREATE INDEX CONCURRENTLY t_id ON t (id);\nCOMMIT;\n",
            "00002_bad.sql:5: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and the file's own"
            " BEGIN at line 3 opened one: goose would fail here. End that transaction (COMMIT) before line 5",
        ),
        (
            "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE t (id int);\n"
            "CREATE INDEX CONCURRENTLY t_id ON t (id);\n-- +goose StatementEnd\n",
            "00002_bad.sql:5: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and PostgreSQL runs"
            " the commands of statement 1 in one (several commands in one statement, as in a"
            " StatementBegin/StatementEnd block): goose would fail here. Give it a statement of its own",
        ),
        (
            "-- +goose Up\nCREATE TABLE t (id int);\nCOMMIT AND CHAIN;\nVACUUM t;\n",
            "00002_bad.sql:4: VACUUM cannot run inside a transaction block, and the file's own COMMIT AND CHAIN at"
            " line 3 opened one: goose would fail here. End that transaction (COMMIT) before line 4",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\nVACUUM;\n-- +goose StatementEnd\n",
            "00002_bad.sql:4: VACUUM cannot run inside a transaction block, and PostgreSQL runs the commands of"
            " statement 1 in one (several commands in one statement, as in a StatementBegin/StatementEnd block):"
            " goose would fail here. Give it a statement of its own, in a file with '-- +goose NO TRANSACTION'",
        ),
    ],
)
def test_the_refusal_names_the_block_it_would_run_in(migrations: MigrationDir, body: str, expected: str) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add("00002_bad.sql", body)
    assert validate_problem(migrations) == expected


def test_a_syntax_error_is_refused_where_goose_fails_part_way(
    dsn: str, other_dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add(
        "00002_typo.sql",
        "-- +goose Up\nCREATE TABLE second (\n    id int,\n    name txt text\n);\n-- +goose Down\nDROP TABLE second;\n",
    )
    expected = (
        '00002_typo.sql:4: syntax error at or near "text": PostgreSQL would refuse statement 1 part-way through'
        " the run; fix the SQL"
    )
    assert validate_problem(migrations) == expected
    assert refusal(run_cli("up", dsn=dsn, directory=migrations.path)) == expected
    assert tables(dsn) == set()
    goose = Tools(other_dsn, migrations.path).goose("up")
    assert goose.returncode == 1
    assert 'syntax error at or near "text" (SQLSTATE 42601)' in goose.stderr
    assert versions(other_dsn) == [0, 1]


def test_a_syntax_error_in_a_down_section_is_refused_before_rolling_back(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add(
        "00002_second.sql", "-- +goose Up\nCREATE TABLE second (id int);\n-- +goose Down\nDROP TABLEE second;\n"
    )
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert refusal(run_cli("reset", dsn=dsn, directory=migrations.path)) == (
        '00002_second.sql:4: syntax error at or near "TABLEE": PostgreSQL would refuse statement 1 part-way'
        " through the run; fix the SQL"
    )
    assert versions(dsn) == [0, 1, 2]


FUNCTION_WITHOUT_BLOCK = """\
-- +goose Up
CREATE TABLE accounts (id int, updated_at timestamptz);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
-- +goose Down
DROP FUNCTION touch();
"""


def test_a_function_body_cut_by_gooses_semicolon_rule_points_at_statement_begin(
    dsn: str, migrations: MigrationDir
) -> None:
    """Not at NO TRANSACTION: the END; goose's rule leaves as a statement of its own is no COMMIT
    to take out of a transaction, the body is what needs mending."""
    migrations.add("00001_first.sql", FIRST)
    migrations.add("00002_touch.sql", FUNCTION_WITHOUT_BLOCK)
    expected = (
        "00002_touch.sql:3: unterminated dollar-quoted string at or near"
        ' "$$ BEGIN NEW.updated_at := now();": goose ends a statement at the first line whose last word'
        " ends with ';' (line 5 here), which cut statement 2"
        " short. A function body, DO block or BEGIN ATOMIC body with ';' inside must stand between"
        " '-- +goose StatementBegin' and '-- +goose StatementEnd'"
    )
    assert validate_problem(migrations) == expected
    assert refusal(run_cli("up", dsn=dsn, directory=migrations.path)) == expected
    assert tables(dsn) == set()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "-- +goose Up\nCREATE FUNCTION one() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n",
            "00002_x.sql:4: syntax error at end of input: goose ends a statement at the first line whose last word"
            " ends with ';' (line 4 here), which cut statement 1 short. A function body, DO block or BEGIN ATOMIC"
            " body with ';' inside must stand between '-- +goose StatementBegin' and '-- +goose StatementEnd'",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION one() RETURNS int LANGUAGE sql AS $$\n"
            "SELECT 1;\n-- +goose StatementEnd\n",
            '00002_x.sql:3: unterminated dollar-quoted string at or near "$$ SELECT 1;": PostgreSQL would refuse'
            " statement 1 part-way through the run; fix the SQL",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\nCOPY first TO STDOUT;\n-- +goose StatementEnd\n",
            "00002_x.sql:4: COPY TO STDOUT shares statement 1 with other commands: the migrator can discard a"
            " COPY's rows only when it is a statement of its own (goose discards them either way). Give it a"
            " statement of its own, or remove it: it changes nothing",
        ),
    ],
    ids=["BEGIN ATOMIC cut short", "inside StatementBegin only a syntax error", "COPY TO STDOUT among others"],
)
def test_what_validate_says_of_a_file(migrations: MigrationDir, body: str, expected: str) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add("00002_x.sql", body)
    assert validate_problem(migrations) == expected


COPY_IN = "-- +goose Up\nCREATE TABLE loaded (id int);\nCOPY loaded (id) FROM stdin;\n-- +goose Down\nSELECT 1;\n"


def test_copy_from_stdin_is_refused_by_line_where_goose_waits_for_ever(
    dsn: str, other_dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_load.sql", COPY_IN)
    expected = (
        "00001_load.sql:3: COPY FROM STDIN reads its rows from the client, and goose sends none: goose would wait"
        " here for ever. Load the rows with INSERT ... VALUES, or COPY FROM a file on the database server"
    )
    assert validate_problem(migrations, files=1) == expected
    for command in ("plan", "up"):
        assert refusal(run_cli(command, dsn=dsn, directory=migrations.path)) == expected
    assert tables(dsn) == set()
    goose = Tools(other_dsn, migrations.path).spawn_goose("up")
    try:
        # goose's session sits in the COPY, the server waiting for rows goose never sends.
        wait_until(
            "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'"
            " AND wait_event = 'ClientRead' AND query LIKE 'COPY loaded%'",
            other_dsn,
        )
        assert goose.poll() is None
    finally:
        goose.kill()
        goose.communicate()


def test_copy_to_stdout_runs_as_goose_runs_it(dsn: str, other_dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_copy_out.sql",
        "-- +goose Up\nCREATE TABLE shown (id int);\nINSERT INTO shown VALUES (1), (2);\nCOPY shown TO STDOUT;\n"
        "COMMIT;\nCOPY shown TO STDOUT;\nCREATE TABLE after_copy (id int);\n"
        "-- +goose Down\nCOPY (SELECT 1) TO STDOUT;\nDROP TABLE after_copy;\nDROP TABLE shown;\n",
    )
    migrations.add(
        "00002_no_tx.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCOPY shown TO STDOUT WITH (FORMAT csv);\nCREATE TABLE also (id int);\n"
        "-- +goose Down\nDROP TABLE also;\n",
    )
    tools = Tools(dsn, migrations.path)
    ok(tools.migrator("up"))
    ok(Tools(other_dsn, migrations.path).goose("up"))
    assert tables(dsn) - {"_migrations_ledger", "_migrations_runs"} == tables(other_dsn)
    assert versions(dsn) == versions(other_dsn) == [0, 1, 2]
    ok(tools.migrator("reset"))
    assert tables(dsn) == {"_migrations", "_migrations_ledger", "_migrations_runs"}


def test_the_first_problem_by_line_is_reported(migrations: MigrationDir) -> None:
    migrations.add("00001_first.sql", FIRST)
    migrations.add("00002_two.sql", "-- +goose Up\nSELEC 1;\nVACUUM;\nCOPY first FROM STDIN;\n")
    assert validate_problem(migrations).startswith('00002_two.sql:2: syntax error at or near "SELEC"')
    migrations.add("00002_two.sql", "-- +goose Up\nCOPY first FROM STDIN;\nSELEC 1;\nVACUUM;\n")
    assert validate_problem(migrations).startswith("00002_two.sql:2: COPY FROM STDIN reads its rows")


def test_a_long_quote_of_the_sql_is_cut_short_on_one_line(migrations: MigrationDir) -> None:
    migrations.add("00001_first.sql", FIRST)
    long_line = " ".join(f"PERFORM {n};" for n in range(20))
    migrations.add("00002_long.sql", f"-- +goose Up\nDO $$ BEGIN {long_line}\nEND $$;\n")
    assert validate_problem(migrations) == (
        '00002_long.sql:2: unterminated dollar-quoted string at or near "$$ BEGIN PERFORM 0; PERFORM 1; PERFORM 2;'
        " PERFORM 3; PERF...\": goose ends a statement at the first line whose last word ends with ';' (line 2"
        " here), which cut statement 1 short. A function body, DO block or BEGIN ATOMIC body with ';' inside must"
        " stand between '-- +goose StatementBegin' and '-- +goose StatementEnd'"
    )


def test_after_an_empty_block_goose_drops_the_line_and_runs_what_the_refusal_names(
    other_dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_first.sql", FIRST)
    empty_block = "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\n"
    migrations.add("00002_cut.sql", empty_block + "CREATE TABLE cut (\n    id int\n);\n")
    assert validate_problem(migrations) == (
        "00002_cut.sql:4: this line follows the empty StatementBegin/StatementEnd block that ends at line 3; goose"
        " would silently drop it and go on with line 5 ('id int') as if it were not there. Remove the empty block"
    )
    goose = Tools(other_dsn, migrations.path)
    failed = goose.goose("up")
    assert failed.returncode == 1
    assert 'failed to execute SQL query "id int\\n);"' in failed.stderr  # line 5 on, without line 4
    migrations.add("00002_cut.sql", empty_block + "CREATE TABLE dropped (id int);\nCREATE TABLE kept (id int);\n")
    assert validate_problem(migrations) == (
        "00002_cut.sql:4: this line follows the empty StatementBegin/StatementEnd block that ends at line 3; goose"
        " would silently drop it and go on with line 5 ('CREATE TABLE kept (id int);') as if it were not there."
        " Remove the empty block"
    )
    ok(goose.goose("up"))
    assert tables(other_dsn) == {"_migrations", "first", "kept"}


@pytest.mark.parametrize(
    ("quoted", "shown"),
    [("a" * 60, "a" * 60), ("a" * 61, "a" * 57 + "..."), ("a\n  b", "a b")],
)
def test_the_grammars_quote_of_the_sql_is_shown_on_one_line_and_cut_at_60_characters(quoted: str, shown: str) -> None:
    message = f'unterminated quoted string at or near "{quoted}"'
    assert _one_line(message) == f'unterminated quoted string at or near "{shown}"'
