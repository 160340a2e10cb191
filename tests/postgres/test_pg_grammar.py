"""PostgreSQL's grammar over goose's statements (migrator/pg_grammar.py): the commands that
matter before anything runs, named as PostgreSQL names them, and checked against the real
server: every command said to be unable to run in a transaction block fails in one with the
server's own words, and every near miss runs there."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pglast import keywords

from migrator.parser import Statement
from migrator.pg_grammar import (
    GRAMMAR_LIMIT,
    NEWER_THAN_POSTGRESQL_15,
    Command,
    GrammarError,
    Kind,
    _first_word,
    read,
    statements_that,
)


def commands_of(sql: str, *, use_tx: bool = True, line: int = 1) -> list[Command]:
    return list(read([Statement(sql, line)], use_tx=use_tx).commands)


def kinds(sql: str) -> list[tuple[Kind, str, bool]]:
    return [(c.kind, c.name, c.chain) for c in commands_of(sql)]


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("BEGIN;", [(Kind.BEGIN, "BEGIN", False)]),
        ("begin work;", [(Kind.BEGIN, "BEGIN", False)]),
        ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE;", [(Kind.BEGIN, "START TRANSACTION", False)]),
        ("COMMIT;", [(Kind.COMMIT, "COMMIT", False)]),
        ("end transaction;", [(Kind.COMMIT, "END", False)]),
        ("COMMIT AND CHAIN;", [(Kind.COMMIT, "COMMIT AND CHAIN", True)]),
        ("COMMIT AND NO CHAIN;", [(Kind.COMMIT, "COMMIT", False)]),
        ("ROLLBACK;", [(Kind.ROLLBACK, "ROLLBACK", False)]),
        ("ABORT;", [(Kind.ROLLBACK, "ABORT", False)]),
        ("ROLLBACK AND CHAIN;", [(Kind.ROLLBACK, "ROLLBACK AND CHAIN", True)]),
        ("PREPARE TRANSACTION 'tx1';", [(Kind.PREPARE, "PREPARE TRANSACTION", False)]),
        ("COPY accounts FROM STDIN;", [(Kind.COPY_FROM_CLIENT, "COPY FROM STDIN", False)]),
        ("COPY accounts (id) FROM stdin WITH (FORMAT csv);", [(Kind.COPY_FROM_CLIENT, "COPY FROM STDIN", False)]),
        ("COPY (SELECT 1) TO STDOUT;", [(Kind.COPY_TO_CLIENT, "COPY TO STDOUT", False)]),
        ("/* a /* nested */ comment */ COMMIT;", [(Kind.COMMIT, "COMMIT", False)]),
        ("SELECT 1; COMMIT; BEGIN;", [(Kind.COMMIT, "COMMIT", False), (Kind.BEGIN, "BEGIN", False)]),
    ],
)
def test_transaction_control_and_copy_are_found(sql: str, found: list[tuple[Kind, str, bool]]) -> None:
    assert kinds(sql) == found


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  COMMIT;\n  RETURN 1;\nEND;\n$$;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND;",
        "DO $body$ BEGIN PERFORM 1; END $body$;",
        "SELECT CASE WHEN true THEN 1 END AS begin, 'COMMIT; VACUUM' AS \"end\";",
        "SAVEPOINT a; RELEASE SAVEPOINT a; ROLLBACK TO SAVEPOINT a;",
        "PREPARE q AS SELECT 1;",
        "COPY accounts FROM '/tmp/accounts.csv';",
        "COPY accounts FROM PROGRAM 'cat /tmp/accounts.csv';",
        "COPY accounts TO '/tmp/accounts.csv';",
        "CREATE INDEX accounts_email ON accounts (email);",
        "CREATE TABLE concurrently_named (database text, tablespace text, system text);",
        "ALTER TABLE accounts ADD COLUMN concurrently int;",
        "DROP TABLE database_list;",
        "ANALYZE accounts;",
        "REINDEX TABLE accounts;",
        "REINDEX (CONCURRENTLY false) TABLE accounts;",
        "REINDEX (CONCURRENTLY 0) INDEX accounts_email;",
        "REINDEX (concurrently OFF) TABLE accounts;",
        "ALTER DATABASE current_db WITH CONNECTION LIMIT 50;",
        "CLUSTER accounts USING accounts_email;",
        "DISCARD PLANS;",
        "ALTER DATABASE current_db SET search_path = public;",
        "ALTER TABLE measurements DETACH PARTITION measurements_2020;",
        "ALTER TABLE measurements DETACH PARTITION measurements_2020 FINALIZE;",
        "ALTER SYSTEM_USER_TABLE ADD COLUMN x int;",
    ],
)
def test_near_misses_are_nothing_that_matters(sql: str) -> None:
    """BEGIN in a body or block, END of a CASE, keywords inside strings and names: not commands."""
    assert commands_of(sql) == []


# Each command PostgreSQL refuses inside a transaction block, as a migration would write it; the
# set-up statements give it the objects it names, so the refusal is the only error it can meet.
OUTSIDE_TRANSACTION = {
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email ON accounts (email);": "CREATE INDEX CONCURRENTLY",
    "DROP INDEX CONCURRENTLY IF EXISTS accounts_plain;": "DROP INDEX CONCURRENTLY",
    "REINDEX INDEX CONCURRENTLY accounts_plain;": "REINDEX CONCURRENTLY",
    "REINDEX (CONCURRENTLY, VERBOSE) TABLE accounts;": "REINDEX CONCURRENTLY",
    "REINDEX (CONCURRENTLY 1) TABLE accounts;": "REINDEX CONCURRENTLY",
    "REINDEX SCHEMA public;": "REINDEX SCHEMA",
    "REINDEX DATABASE {database};": "REINDEX DATABASE",
    "REINDEX SYSTEM {database};": "REINDEX SYSTEM",
    "VACUUM;": "VACUUM",
    "VACUUM (ANALYZE) accounts;": "VACUUM",
    "vacuum full accounts;": "VACUUM",
    "CREATE DATABASE never_made;": "CREATE DATABASE",
    "DROP DATABASE IF EXISTS never_made;": "DROP DATABASE",
    "ALTER DATABASE {database} SET TABLESPACE pg_default;": "ALTER DATABASE SET TABLESPACE",
    "CREATE TABLESPACE never_made LOCATION '/nonexistent';": "CREATE TABLESPACE",
    "DROP TABLESPACE IF EXISTS never_made;": "DROP TABLESPACE",
    "ALTER SYSTEM SET work_mem = '8MB';": "ALTER SYSTEM",
    "ALTER TABLE measurements DETACH PARTITION measurements_2020 CONCURRENTLY;": "ALTER TABLE ... DETACH CONCURRENTLY",
    "DISCARD ALL;": "DISCARD ALL",
    "CLUSTER;": "CLUSTER",
    "COMMIT PREPARED 'never_prepared';": "COMMIT PREPARED",
    "ROLLBACK PREPARED 'never_prepared';": "ROLLBACK PREPARED",
    "-- a comment first\n/* and another */ VACUUM accounts;": "VACUUM",
}
SETUP = (
    "CREATE TABLE accounts (id int PRIMARY KEY, email text);"
    " CREATE INDEX accounts_plain ON accounts (email);"
    " CLUSTER accounts USING accounts_plain;"
    " CREATE TABLE measurements (day date) PARTITION BY RANGE (day);"
    " CREATE TABLE measurements_2020 PARTITION OF measurements FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');"
    " CREATE TABLE current_db_settings (id int);"
)


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(SETUP)
        yield connection


def _in_a_transaction(conn: psycopg.Connection, sql: str) -> psycopg.Error | None:
    """What the server says when ``sql`` runs inside a transaction block; nothing is kept."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql)
    except psycopg.Error as exc:
        return exc
    return None


@pytest.mark.parametrize("template", sorted(OUTSIDE_TRANSACTION))
def test_each_command_that_cannot_run_in_a_transaction_is_named_as_the_server_names_it(
    conn: psycopg.Connection, template: str
) -> None:
    sql = template.format(database=conn.info.dbname)
    [command] = commands_of(sql)
    assert (command.kind, command.name) == (Kind.OUTSIDE_TRANSACTION, OUTSIDE_TRANSACTION[template])
    refused = _in_a_transaction(conn, sql)
    assert refused is not None
    assert refused.sqlstate == "25001"  # active_sql_transaction
    assert refused.diag.message_primary == f"{command.name} cannot run inside a transaction block"


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX accounts_email ON accounts (email);",
        "DROP INDEX accounts_plain;",
        "REINDEX TABLE accounts;",
        "REINDEX (CONCURRENTLY false) TABLE accounts;",
        "ANALYZE accounts;",
        "CLUSTER accounts USING accounts_plain;",
        "CLUSTER accounts;",
        "DISCARD PLANS;",
        "ALTER DATABASE {database} SET search_path = public;",
        "ALTER TABLE measurements DETACH PARTITION measurements_2020;",
        "ALTER TABLE measurements /* not concurrently */ DETACH PARTITION measurements_2020;",
        "ALTER TABLE accounts /* concurrently */ ADD COLUMN note text;",
        "CREATE TABLE concurrently_named (database text, tablespace text, system text);",
        "COPY (SELECT 1) TO '/dev/null';",
    ],
)
def test_near_misses_run_inside_a_transaction(conn: psycopg.Connection, sql: str) -> None:
    sql = sql.format(database=conn.info.dbname)
    assert commands_of(sql) == []
    assert _in_a_transaction(conn, sql) is None


def test_a_command_is_placed_on_the_line_of_its_keyword() -> None:
    sql = "CREATE TABLE a (id int);\n-- then\n/* end\nit */\n  COMMIT;\n\nVACUUM a;"
    found = commands_of(sql, line=10)
    assert [(c.name, c.line, c.statement, c.alone) for c in found] == [
        ("COMMIT", 14, 1, False),
        ("VACUUM", 16, 1, False),
    ]


def test_the_first_keyword_is_found_after_comments_as_older_libpg_query_leaves_them() -> None:
    """pglast 7 (libpg_query 17, the floor) starts a command where the last ';' ended."""
    text = "-- note; really\n /* a /* b */ c */\tCoMmIt"
    assert _first_word(text) == (text.index("CoMmIt"), "commit")
    assert _first_word("/* unterminated") == (15, "")
    assert _first_word("/*/ still a comment */COMMIT") == (22, "commit")
    assert _first_word("/**/VACUUM") == (4, "vacuum")
    assert _first_word("   ") == (3, "")


def test_a_transaction_block_is_followed_through_the_file() -> None:
    """As goose runs it: a transactional file starts inside goose's transaction; the file's own
    COMMIT ends it, its BEGIN opens one, AND CHAIN opens the next at once; several commands
    in one statement always share one (PostgreSQL's implicit block)."""
    statements = [
        Statement("VACUUM a;", 1),
        Statement("COMMIT;", 2),
        Statement("VACUUM b;", 3),
        Statement("BEGIN;", 4),
        Statement("VACUUM c;", 5),
        Statement("COMMIT AND CHAIN;", 6),
        Statement("VACUUM d;", 7),
        Statement("ROLLBACK;", 8),
        Statement("VACUUM e;", 9),
        Statement("SELECT 1; VACUUM f;", 10),
    ]
    as_goose = read(statements, use_tx=True).commands
    assert [(c.line, c.in_block) for c in as_goose] == [
        (1, True), (2, True), (3, False), (4, False), (5, True), (6, True), (7, True), (8, True), (9, False),
        (10, True),
    ]  # fmt: skip
    without = read(statements, use_tx=False).commands
    assert [(c.line, c.in_block) for c in without][:3] == [(1, False), (2, False), (3, False)]


def test_syntax_errors_are_located_and_the_rest_is_still_read() -> None:
    statements = [
        Statement("CREATE TABLE a (id int);", 1),
        Statement("CREATE TABLE b (\n  id int,\n  name txt text\n);", 2),
        Statement("SELECT 'unfinished;", 6),
        Statement("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT 1;", 7),
        Statement("COMMIT;", 9),
    ]
    reading = read(statements, use_tx=True)
    assert reading.errors == (
        GrammarError(2, 4, 'syntax error at or near "text"'),
        GrammarError(3, 6, 'unterminated quoted string at or near "\'unfinished;"'),
        GrammarError(4, 8, "syntax error at end of input"),
    )
    assert [(c.name, c.statement) for c in reading.commands] == [("COMMIT", 5)]


def test_a_statement_over_the_limit_is_scanned_its_grammar_left_to_the_server() -> None:
    """A seed's one INSERT of every row would cost the C parser ten times its size: its quotes
    are still checked, its grammar is the server's to judge (and refuse whole)."""
    rows = ", ".join(f"({n}, 'row {n}')" for n in range(GRAMMAR_LIMIT // 12))
    seed = f"INSERT INTO seed VALUES {rows};"
    assert len(seed) > GRAMMAR_LIMIT
    broken = seed.replace("(7, 'row 7')", "(7,, 'row 7')")
    unterminated = seed.replace("'row 7')", "'row 7)")
    reading = read([Statement(broken, 2), Statement(unterminated, 3), Statement("COMMIT;", 4)], use_tx=True)
    assert [(e.statement, e.line, e.message[:40]) for e in reading.errors] == [
        (2, 3, "unterminated quoted string at or near \"'"),
    ]
    assert [(c.name, c.statement) for c in reading.commands] == [("COMMIT", 3)]
    short = broken[: GRAMMAR_LIMIT // 2].rsplit("),", 1)[0] + ");"
    assert [e.message for e in read([Statement(short, 2)], use_tx=True).errors] == ['syntax error at or near ","']


def test_statements_that_are_not_one_command_are_named() -> None:
    """The statements whose commands could not be told apart by their results: none or several."""
    statements = [
        Statement("CREATE TABLE a (id int);", 1),
        Statement("INSERT INTO a VALUES (1); INSERT INTO a VALUES (2);", 2),
        Statement("-- nothing but a comment\n", 3),
        Statement("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; SELECT 2 $$;", 4),
    ]
    assert read(statements, use_tx=True).not_one_command == (2, 3)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE sessions (id int, system_user text);",
        "CREATE FUNCTION json_table() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        "CREATE FUNCTION merge_action(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 $$;",
    ],
)
def test_a_word_only_newer_grammars_reserve_is_left_to_the_server(conn: psycopg.Connection, sql: str) -> None:
    """pglast's grammar is newer than PostgreSQL 15's: what only the newer one refuses is no syntax error."""
    reading = read([Statement(sql, 1)], use_tx=True)
    assert (reading.commands, reading.errors) == ((), ())
    assert reading.not_one_command == (1,), "how many commands it holds is the server's to say"
    assert _in_a_transaction(conn, sql) is None


def test_the_words_left_to_the_server_are_those_pglast_reserves_beyond_the_server(conn: psycopg.Connection) -> None:
    """pglast's keyword lists against the server's pg_get_keywords(): a word the server leaves
    freer than pglast's grammar does must be among those tolerated."""
    order = "UCTR"  # unreserved, column name, type or function name, reserved
    server = {str(word): str(code) for word, code in conn.execute("SELECT word, catcode FROM pg_get_keywords()")}
    ours = {
        **dict.fromkeys(keywords.UNRESERVED_KEYWORDS, "U"),
        **dict.fromkeys(keywords.COL_NAME_KEYWORDS, "C"),
        **dict.fromkeys(keywords.TYPE_FUNC_NAME_KEYWORDS, "T"),
        **dict.fromkeys(keywords.RESERVED_KEYWORDS, "R"),
    }
    stricter = {word for word, code in ours.items() if order.index(code) > order.index(server.get(word, "U"))}
    assert stricter <= NEWER_THAN_POSTGRESQL_15
    if conn.info.server_version // 10000 == 15:
        assert stricter == NEWER_THAN_POSTGRESQL_15


def test_statements_that_answers_which_statements_hold_a_command() -> None:
    statements = [
        Statement("CREATE TABLE a (id int);", 1),
        Statement("CREATE INDEX CONCURRENTLY a_id ON a (id);", 2),
        Statement("VACUUM a;", 3),
        Statement("CREATE INDEX CONCURRENTLY a_id2 ON a (id); CREATE INDEX CONCURRENTLY a_id3 ON a (id);", 4),
    ]
    found = read(statements, use_tx=False).commands
    assert statements_that(found, "CREATE INDEX CONCURRENTLY") == [2, 4]
    assert statements_that(found, "CREATE INDEX CONCURRENTLY", "VACUUM") == [2, 3, 4]
    assert statements_that(found, "COMMIT") == []
