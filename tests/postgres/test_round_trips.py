"""How a transactional file's statements reach the server: at once, as one simple query with
its opening, or one at a time when its results could not tell its statements apart or a run
budget could cut one short. The file itself reads what the server received (current_query())."""

from __future__ import annotations

import pytest

from tests.support import MigrationDir, query, tables, versions
from tests.support.cli_runner import run_cli

LAST = "CREATE TABLE q AS SELECT current_query() AS sent;"
TWO_COMMANDS = "-- +goose StatementBegin\nCREATE TABLE a (id int); CREATE TABLE b (id int);\n-- +goose StatementEnd"


@pytest.mark.parametrize(
    ("first", "options", "at_once"),
    [
        ("CREATE TABLE a (id int);", [], True),
        (TWO_COMMANDS, [], False),
        # The budget's remainder is less than two statements' own 3 h statement_timeout.
        ("CREATE TABLE a (id int);", ["--run-timeout", "1h"], False),
        # An hour covers two statements of 1 s each, with a second of slack each.
        ("CREATE TABLE a (id int);", ["--run-timeout", "1h", "--statement-timeout", "1s"], True),
    ],
    ids=["at once", "a statement of two commands", "a budget that could cut one short", "a budget that cannot"],
)
def test_a_transactional_file_goes_at_once_when_its_results_name_its_statements(
    dsn: str, migrations: MigrationDir, first: str, options: list[str], at_once: bool
) -> None:
    migrations.add("00001_q.sql", f"-- +goose Up\n{first}\n{LAST}\n")
    result = run_cli("up", *options, dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    [(sent,)] = query(dsn, "SELECT sent FROM q")
    assert isinstance(sent, str)
    if not at_once:  # the statement alone, after its budget when there is one
        assert sent.split("; ")[-1] == LAST
        assert "CREATE TABLE a" not in sent
        assert not sent.startswith("BEGIN")
        return
    parts = sent.split("\n;\n")
    assert parts[:2] == ["BEGIN", "SET LOCAL lock_timeout = '500ms'"]
    assert parts[4].startswith("SELECT CASE WHEN NOT pg_try_advisory_xact_lock(")  # the guard
    assert parts[5:] == ["CREATE TABLE a (id int);", LAST]


def test_a_statement_ending_in_a_comment_ends_where_goose_ends_it(dsn: str, migrations: MigrationDir) -> None:
    """Sent at once, a statement's last line comment must not swallow what ends it."""
    migrations.add(
        "00001_c.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (id int)\n-- ends in a comment, without a semicolon\n"
        "-- +goose StatementEnd\nCREATE TABLE b (id int);\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert tables(dsn) == {"_migrations", "_migrations_ledger", "_migrations_runs", "a", "b"}
    assert versions(dsn) == [0, 1]
