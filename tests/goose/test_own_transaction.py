"""A file that runs in a transaction and ends it itself (its own COMMIT, END, ROLLBACK) runs
as goose runs it (migrator/own_transaction.py, applying.py): the same committed schema, data
and version rows as the real goose, no warning from the migrator's own bookkeeping, every
command saying what it does, and a failure after the split saying what stays committed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import NamedTuple

import psycopg
import pytest

from migrator import Migrator, TableName
from migrator.errors import Failure, MigrationFailed
from migrator.events import Event, LockRetry
from migrator.ledger_entries import State, file_sha256
from migrator.own_transaction import what_stays
from migrator.parser import Direction, parse_file
from migrator.safety import Safety
from tests.support import MigrationDir, interrupted_during, server_warnings, tables, versions
from tests.support.cli_runner import run_cli
from tests.support.goose_interop import Tools, data, ok, schema

GOOSE_TABLE = TableName.parse("_migrations")

# The shapes real corpora take; each must leave what goose leaves.
FILES = {
    "statement_block_ends_with_commit": """\
-- +goose Up
-- +goose StatementBegin
CREATE TABLE plans (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO plans VALUES (1, 'free'), (2, 'pro');
COMMIT;
-- +goose StatementEnd

-- +goose Down
DROP TABLE plans;
""",
    "begin_and_commit_around_the_file": """\
-- +goose Up
BEGIN;
CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric NOT NULL);
CREATE INDEX invoices_total ON invoices (total);
COMMIT;

-- +goose Down
BEGIN;
DROP TABLE invoices;
COMMIT;
""",
    "commit_then_an_index_built_concurrently": """\
-- +goose Up
CREATE TABLE events (id bigint, kind text);
COMMIT;
CREATE INDEX CONCURRENTLY events_kind ON events (kind);

-- +goose Down
DROP TABLE events;
""",
    "a_new_enum_value_used_after_commit": """\
-- +goose Up
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE people (name text, current_mood mood);
ALTER TYPE mood ADD VALUE 'happy';
COMMIT;
INSERT INTO people VALUES ('ann', 'happy');

-- +goose Down
DROP TABLE people;
DROP TYPE mood;
""",
    "rollback_part_way": """\
-- +goose Up
CREATE TABLE scratch (id int);
ROLLBACK;
CREATE TABLE kept (id int);

-- +goose Down
DROP TABLE kept;
""",
    "a_transaction_left_open": """\
-- +goose Up
CREATE TABLE left_a (id int);
COMMIT;
BEGIN;
CREATE TABLE left_b (id int);

-- +goose Down
DROP TABLE left_b;
DROP TABLE left_a;
""",
    "commit_and_chain": """\
-- +goose Up
CREATE TABLE chained_a (id int);
COMMIT AND CHAIN;
CREATE TABLE chained_b (id int);

-- +goose Down
DROP TABLE chained_b, chained_a;
""",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_up_and_reset_leave_what_goose_leaves(name: str, dsn: str, other_dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_first.sql", "-- +goose Up\nCREATE TABLE first (id int);\n-- +goose Down\nDROP TABLE first;\n")
    migrations.add(f"00002_{name}.sql", FILES[name])
    ours, goose = Tools(dsn, migrations.path), Tools(other_dsn, migrations.path)
    ok(ours.migrator("up"))
    ok(goose.goose("up"))
    assert schema(dsn) == schema(other_dsn)
    assert data(dsn) == data(other_dsn)
    assert versions(dsn) == versions(other_dsn) == [0, 1, 2]
    assert ours.assert_agree() == [1, 2]
    ok(ours.migrator("reset"))
    ok(goose.goose("reset"))
    assert schema(dsn) == schema(other_dsn)
    assert versions(dsn) == versions(other_dsn) == [0]


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("statement_block_ends_with_commit", []),
        ("commit_then_an_index_built_concurrently", []),
        ("a_transaction_left_open", []),
        ("commit_and_chain", []),
        # The file's own BEGIN inside the migration's transaction: goose's run warns the same.
        ("begin_and_commit_around_the_file", ["there is already a transaction in progress"]),
    ],
)
def test_the_bookkeeping_gives_the_server_nothing_to_warn_about(
    conn: psycopg.Connection, migrations: MigrationDir, name: str, expected: list[str]
) -> None:
    """The version row and the ledger are written in whatever state the file left the session:
    no COMMIT without a transaction, no BEGIN inside one."""
    path = migrations.add(f"00001_{name}.sql", FILES[name])
    warnings = server_warnings(conn)
    migrator = Migrator(conn, migrations.path, GOOSE_TABLE)
    assert migrator.up(lock_wait=10).current == 1
    assert warnings == expected
    status = migrator.status()
    assert (status.pending, status.edited, status.interrupted) == ([], [], [])
    entry = migrator.ledger.entries()[1]
    assert (entry.state, entry.sha256) == (State.APPLIED, file_sha256(path))
    # The session's timeouts are back to the server's: the file's SET LOCAL went with its COMMIT.
    assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
    assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE


def test_the_statements_after_the_split_run_under_the_timeouts(
    conn: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_timeouts.sql",
        "-- +goose Up\nCOMMIT;\nCREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock,"
        " current_setting('statement_timeout') AS statement;\n",
    )
    Migrator(conn, migrations.path, GOOSE_TABLE, safety=Safety(lock_timeout=2, statement_timeout=60)).up(lock_wait=10)
    assert conn.execute("SELECT lock, statement FROM seen").fetchone() == ("2s", "1min")


AUTOCOMMIT_FAILURE = """\
-- +goose Up
CREATE TABLE committed_first (id int);
COMMIT;
CREATE TABLE after_commit (id int);
INSERT INTO after_commit VALUES (1 / 0);
CREATE TABLE never (id int);
"""
BLOCK_FAILURE = """\
-- +goose Up
CREATE TABLE block_a (id int);
COMMIT;
CREATE TABLE block_b (id int);
BEGIN;
CREATE TABLE block_c (id int);
SELECT 1 / 0;
COMMIT;
"""


class Failing(NamedTuple):
    body: str
    message: str
    where: tuple[int, int]  # the statement that failed, its line


@pytest.mark.parametrize(
    "case",
    [
        Failing(
            AUTOCOMMIT_FAILURE,
            "00002_split.sql (up): statement 4 (line 5) failed: ERROR: division by zero (SQLSTATE 22012); the file"
            " ended the migration's transaction itself with its COMMIT at line 3, so statements 1 (line 2), 2 (line"
            " 3), 3 (line 4) committed; version 2 was not recorded. Repair by hand, then rerun: it runs the file"
            " again from its first statement, as goose does",
            (4, 5),
        ),
        Failing(
            BLOCK_FAILURE,
            "00002_split.sql (up): statement 6 (line 7) failed: ERROR: division by zero (SQLSTATE 22012); the file"
            " ended the migration's transaction itself with its COMMIT at line 3, so statements 1 (line 2), 2 (line"
            " 3), 3 (line 4) committed; statements 4 (line 5), 5 (line 6) rolled back with the failure, in the"
            " transaction the file had begun; version 2 was not recorded. Repair by hand, then rerun: it runs the"
            " file again from its first statement, as goose does",
            (6, 7),
        ),
    ],
    ids=["in autocommit", "in a transaction the file began"],
)
def test_a_failure_after_the_files_own_commit_says_what_stays_committed(
    dsn: str, other_dsn: str, migrations: MigrationDir, case: Failing
) -> None:
    migrations.add("00001_first.sql", "-- +goose Up\nCREATE TABLE first (id int);\n")
    migrations.add("00002_split.sql", case.body)
    ours, goose = Tools(dsn, migrations.path), Tools(other_dsn, migrations.path)
    by_migrator, by_goose = ours.migrator("up"), goose.goose("up")
    assert by_migrator.returncode == by_goose.returncode == 1
    assert by_migrator.stderr.strip().splitlines() == [f"migrator: error: {case.message}"]
    assert schema(dsn) == schema(other_dsn)
    assert versions(dsn) == versions(other_dsn) == [0, 1]
    [run] = json.loads(ok(ours.migrator("history", "--json")).stdout)["runs"][:1]
    failed = {k: run[k] for k in ("outcome", "failed_file", "failed_statement", "failed_line", "applied")}
    assert failed == {
        "outcome": "failed",
        "failed_file": "00002_split.sql",
        "failed_statement": case.where[0],
        "failed_line": case.where[1],
        "applied": [1],
    }


def test_a_lock_after_the_split_fails_the_file_without_running_it_again(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    """A retry would run the committed statements a second time: a lock that stops a statement
    after the file's own COMMIT fails the file at once."""
    conn.execute("CREATE TABLE locked (id int)")
    migrations.add(
        "00001_split.sql",
        "-- +goose Up\nCREATE TABLE before_lock (id int);\nCOMMIT;\nALTER TABLE locked ADD COLUMN x int;\n",
    )
    events: list[Event] = []
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        migrator = Migrator(
            conn, migrations.path, GOOSE_TABLE, safety=Safety(lock_timeout=0.2, lock_retries=3), on_event=events.append
        )
        with pytest.raises(MigrationFailed) as failed:
            migrator.up(lock_wait=10)
    assert str(failed.value) == (
        "00001_split.sql (up): statement 3 (line 4) failed: ERROR: canceling statement due to lock timeout"
        " (SQLSTATE 55P03); the file ended the migration's transaction itself with its COMMIT at line 3, so"
        " statements 1 (line 2), 2 (line 3) committed; version 1 was not recorded. Repair by hand, then rerun: it"
        " runs the file again from its first statement, as goose does"
    )
    assert not [e for e in events if isinstance(e, LockRetry)]
    assert "before_lock" in tables(dsn)
    assert versions(dsn) == [0]


def test_ctrl_c_after_the_split_says_what_stays_committed(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_slow.sql",
        "-- +goose Up\nCREATE TABLE done_part (id int);\nEND;\nSELECT pg_sleep(30);\nCREATE TABLE never (id int);\n",
    )
    stopped = interrupted_during(
        dsn, "SELECT pg_sleep(30);", lambda: Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    )
    assert str(stopped) == (
        "00001_slow.sql (up): statement 3 (line 4) was interrupted; the file ended the migration's transaction itself"
        " with its END at line 3, so statements 1 (line 2), 2 (line 3) committed; version 1 was not recorded. Repair"
        " by hand, then rerun: it runs the file again from its first statement, as goose does"
    )
    assert stopped.failure == Failure("00001_slow.sql", "up", 3, 4, "interrupted", False)
    assert tables(dsn) & {"done_part", "never"} == {"done_part"}
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE


NOTE = (
    "its own COMMIT at line 5 (statement 1) ends the transaction it runs in: as goose does, the migrator commits"
    " statement 1 there and records the version after it, outside that transaction"
)


def test_validate_plan_show_and_lint_say_what_the_file_does(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_plans.sql", FILES["statement_block_ends_with_commit"])
    validated = run_cli("validate", directory=migrations.path)
    assert validated.returncode == 0
    assert validated.stderr == f"migrator: warning: 00001_plans.sql (up): {NOTE}\n"
    assert validated.stdout == "migrator: 1 migration(s) valid\n"
    plan = run_cli("plan", dsn=dsn, directory=migrations.path)
    assert plan.stdout.splitlines()[:2] == [
        "-- 00001_plans.sql: 1 statement(s), in one transaction",
        f"-- note: {NOTE}",
    ]
    [pending] = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path).stdout)["pending"]
    assert pending["transaction_ends"] == [{"statement": 1, "line": 5, "command": "COMMIT"}]
    shown = json.loads(run_cli("show", "00001_plans.sql", "--json", directory=migrations.path).stdout)
    assert shown["transaction_ends"] == [{"statement": 1, "line": 5, "command": "COMMIT"}]
    assert (
        json.loads(run_cli("show", "00001_plans.sql", "--json", "--down", directory=migrations.path).stdout)[
            "transaction_ends"
        ]
        == []
    )
    linted = run_cli("lint", dsn=dsn, directory=migrations.path)
    assert linted.stdout.splitlines()[0] == f"00001_plans.sql: note: {NOTE}"
    assert "transaction-nesting" in linted.stdout  # squawk's own word for it


@pytest.mark.parametrize(
    ("body", "note"),
    [
        (
            AUTOCOMMIT_FAILURE,
            "its own COMMIT at line 3 (statement 2) ends the transaction it runs in: as goose does, the migrator"
            " commits statements 1 to 2 there and runs statements 3 to 5 outside that transaction, then records the"
            " version; a failure after line 3 cannot undo what was committed",
        ),
        (
            BLOCK_FAILURE,
            "its own COMMIT at line 3 (statement 2) ends the transaction it runs in: as goose does, the migrator"
            " commits statements 1 to 2 there and runs statements 3 to 7 outside that transaction, then records the"
            " version; a failure after line 3 cannot undo what was committed; it ends a transaction again at line 8"
            " (COMMIT)",
        ),
        (
            FILES["rollback_part_way"],
            "its own ROLLBACK at line 3 (statement 2) ends the transaction it runs in: as goose does, the migrator"
            " rolls back statements 1 to 2 there and runs statement 3 outside that transaction, then records the"
            " version",
        ),
        (
            "-- +goose Up\nCREATE TABLE t (id int);\nPREPARE TRANSACTION 'made';\n",
            "its own PREPARE TRANSACTION at line 3 (statement 2) ends the transaction it runs in: as goose does, the"
            " migrator prepares statements 1 to 2 there and records the version after it, outside that transaction",
        ),
        (
            "-- +goose Up\nCOMMIT;\nBEGIN;\nCOMMIT;\nBEGIN;\nROLLBACK;\n",
            "its own COMMIT at line 2 (statement 1) ends the transaction it runs in: as goose does, the migrator"
            " commits statement 1 there and runs statements 2 to 5 outside that transaction, then records the"
            " version; a failure after line 2 cannot undo what was committed; it ends a transaction again at line 4"
            " (COMMIT), line 6 (ROLLBACK)",
        ),
        (
            "-- +goose Up\nCOMMIT;\nCOMMIT;\n",
            "its own COMMIT at line 2 (statement 1) ends the transaction it runs in: as goose does, the migrator"
            " commits statement 1 there and runs statement 2 outside that transaction, then records the version; a"
            " failure after line 2 cannot undo what was committed",
        ),
        ("-- +goose NO TRANSACTION\n-- +goose Up\nBEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n", None),
        ("-- +goose Up\nCREATE TABLE t (id int);\n", None),
    ],
    ids=["commit", "commit twice", "rollback", "prepare", "three ends", "a second commit", "no transaction", "plain"],
)
def test_the_note_says_where_the_file_splits_its_transaction(
    migrations: MigrationDir, body: str, note: str | None
) -> None:
    migrations.add("00001_x.sql", body)
    shown = run_cli("show", "00001_x.sql", directory=migrations.path)
    notes = [line.removeprefix("-- note: ") for line in shown.stdout.splitlines() if line.startswith("-- note: ")]
    assert notes == ([note] if note else [])


@pytest.mark.parametrize(
    ("body", "failed", "open_block", "said"),
    [
        (
            "CREATE TABLE a (id int);\nROLLBACK;\nCREATE TABLE b (id int);\nSELECT 1;\n",
            4,
            False,
            "the file ended the migration's transaction itself with its ROLLBACK at line 3, so statements 1 (line 2),"
            " 2 (line 3) rolled back by its own ROLLBACK at line 3; statement 3 (line 4) committed",
        ),
        (
            "CREATE TABLE a (id int);\nCOMMIT AND CHAIN;\nCREATE TABLE b (id int);\nSELECT 1;\n",
            4,
            True,
            "the file ended the migration's transaction itself with its COMMIT AND CHAIN at line 3, so statements 1"
            " (line 2), 2 (line 3) committed; statement 3 (line 4) rolled back with the failure, in the transaction"
            " the file had begun",
        ),
        (
            "CREATE TABLE a (id int);\nPREPARE TRANSACTION 'made';\nSELECT 1;\n",
            3,
            False,
            "the file ended the migration's transaction itself with its PREPARE TRANSACTION at line 3, so statements 1"
            " (line 2), 2 (line 3) prepared by its own PREPARE TRANSACTION at line 3 (COMMIT PREPARED or ROLLBACK"
            " PREPARED settles them)",
        ),
        (
            "COMMIT;\nCOMMIT;\nCREATE TABLE b (id int);\nSELECT 1;\n",
            4,
            False,
            "the file ended the migration's transaction itself with its COMMIT at line 2, so statements 1 (line 2),"
            " 3 (line 4) committed",
        ),
        (
            "CREATE TABLE a (id int);\nCOMMIT AND CHAIN;\nBEGIN;\nCREATE TABLE b (id int);\nSELECT 1;\n",
            5,
            True,
            "the file ended the migration's transaction itself with its COMMIT AND CHAIN at line 3, so statements 1"
            " (line 2), 2 (line 3) committed; statements 3 (line 4), 4 (line 5) rolled back with the failure, in the"
            " transaction the file had begun",
        ),
    ],
    ids=["rollback", "commit and chain", "prepare", "a commit outside any transaction", "begin inside a chained one"],
)
def test_what_stays_follows_each_end_of_a_transaction(
    migrations: MigrationDir, body: str, failed: int, open_block: bool, said: str
) -> None:
    """The cases a server with max_prepared_transactions = 0, or a failure the tests can place, do
    not reach through a run: what the message would say, from the file alone."""
    path = migrations.add("00001_x.sql", "-- +goose Up\n" + body)
    assert what_stays(parse_file(path, Direction.UP), failed, rolled_back_open=open_block) == said
