"""How a transactional file's statements reach the server: at once, as one simple query with
its opening, or one at a time when its results could not tell its statements apart or a run
budget could cut one short. The file itself reads what the server received (current_query())."""

from __future__ import annotations

import pytest

from tests.support import MigrationDir, query, tables, versions
from tests.support.cli_runner import run_cli

LAST = "CREATE TABLE q AS SELECT current_query() AS sent;"
TIMEOUT_MS = "SELECT setting::bigint AS timeout FROM pg_settings WHERE name = 'statement_timeout'"
TWO_COMMANDS = "-- +goose StatementBegin\nCREATE TABLE a (id int); CREATE TABLE b (id int);\n-- +goose StatementEnd"


@pytest.mark.parametrize(
    ("first", "options", "at_once"),
    [
        ("CREATE TABLE a (id int);", [], True),
        (TWO_COMMANDS, [], False),
        # The budget goes with the statements (test_the_budget_goes_with_a_file_sent_at_once).
        ("CREATE TABLE a (id int);", ["--run-timeout", "1h"], True),
    ],
    ids=["at once", "a statement of two commands", "under a budget"],
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
    statements = [part for part in parts[5:] if "migrator budget" not in part]
    assert statements == ["CREATE TABLE a (id int);", LAST]
    checks = [number for number, part in enumerate(parts[5:]) if "migrator budget" in part]
    assert checks == ([0, 2] if options else [])  # the budget's check before each statement


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        (["--run-timeout", "1h"], "t"),
        (["--run-timeout", "1h", "--statement-timeout", "30m"], "f"),
    ],
    ids=["the budget is less than the statement's own timeout", "the statement's own timeout is less"],
)
def test_the_budget_goes_with_a_file_sent_at_once(
    dsn: str, migrations: MigrationDir, options: list[str], bound: str
) -> None:
    """Before each statement the server sets what is left of the budget as its timeout when it
    is the smaller, as the file itself sees it."""
    migrations.add(
        "00001_b.sql",
        f"-- +goose Up\nCREATE TABLE b AS {TIMEOUT_MS};\nINSERT INTO b {TIMEOUT_MS};\n",
    )
    result = run_cli("up", *options, dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    seen = [int(str(row[0])) for row in query(dsn, "SELECT timeout FROM b")]
    if bound == "f":
        assert seen == [1_800_000, 1_800_000]
        return
    # What is left of an hour, less at the second statement.
    assert len(seen) == 2
    assert 3_500_000 < seen[1] <= seen[0] < 3_600_000


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


def test_a_file_sent_at_once_carries_the_previous_ones_version_rows_and_commit(
    dsn: str, migrations: MigrationDir
) -> None:
    """One round trip per file: the second file's query begins with the first's closing; a file
    that does not go at once (one statement) has the previous one's closing sent alone first."""
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n")
    migrations.add("00002_q.sql", f"-- +goose Up\nCREATE TABLE c (id int);\n{LAST}\n")
    migrations.add("00003_d.sql", "-- +goose Up\nCREATE TABLE d (id int);\n")
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    reported = [line.split(" (")[0] for line in result.stdout.splitlines()[:3]]
    assert reported == ["OK   00001_a.sql", "OK   00002_q.sql", "OK   00003_d.sql"]
    [(sent,)] = query(dsn, "SELECT sent FROM q")
    assert isinstance(sent, str)
    previous, *parts = sent.split("\n;\n")
    assert previous.startswith("RESET SESSION AUTHORIZATION; RESET ALL; ")
    assert previous.endswith("; COMMIT")
    assert 'INSERT INTO "public"."_migrations" (version_id, is_applied) VALUES (1, true)' in previous
    assert parts[0] == "BEGIN"
    assert parts[-2:] == ["CREATE TABLE c (id int);", LAST]
    assert versions(dsn) == [0, 1, 2, 3]
    assert query(dsn, "SELECT version_id, state FROM _migrations_ledger ORDER BY version_id") == [
        (1, "applied"),
        (2, "applied"),
        (3, "applied"),
    ]


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        # PostgreSQL points into the query (a position counted over the previous file's closing too).
        ("INSERT INTO missing VALUES (1);", 'ERROR: relation "missing" does not exist (SQLSTATE 42P01)'),
        # No position: the results after the previous file's COMMIT count the statements.
        (
            "INSERT INTO c VALUES (1);",
            'ERROR: duplicate key value violates unique constraint "c_pkey" (SQLSTATE 23505)',
        ),
    ],
    ids=["an error with a position", "an error without one"],
)
def test_a_file_failing_after_the_previous_ones_commit_names_its_statement(
    dsn: str, migrations: MigrationDir, second: str, reason: str
) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n")
    migrations.add(
        "00002_c.sql",
        f"-- +goose Up\nCREATE TABLE c (id int PRIMARY KEY);\nINSERT INTO c VALUES (1);\n{second}\nSELECT 4;\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 1
    assert result.stdout.startswith("OK   00001_a.sql")
    error = result.stderr.strip()
    assert error.startswith(f"migrator: error: 00002_c.sql (up): statement 3 (line 4) failed: {reason}"), error
    assert error.endswith("rolled back: nothing of this file was applied and version 2 was not recorded")
    assert versions(dsn) == [0, 1]
    assert tables(dsn) == {"_migrations", "_migrations_ledger", "_migrations_runs", "a", "b"}
