"""What a schema-only rehearsal cannot see, predicted on the target's rows: each kind of check,
its count, its verdict, and the target only read."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from migrator import Migrator, TableName
from migrator.data_checks import DataCheck, Verdict, predict
from migrator.dsn import connect
from tests.support import MigrationDir, login_role, query

GOOSE_TABLE = TableName.parse("_migrations")
BASE = """-- +goose Up
CREATE TABLE users (id bigint PRIMARY KEY, email text, handle text, age int);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint, body text);
CREATE TABLE pairs (a int, b int);
"""
ROWS = """
INSERT INTO users VALUES (1, 'a@example.org', 'h1', 30), (2, NULL, 'h1', 15), (3, 'c@example.org', NULL, NULL),
    (4, NULL, 'h4', 40);
INSERT INTO posts VALUES (1, 1, 'x'), (2, 9, 'y'), (3, NULL, 'z');
INSERT INTO pairs VALUES (1, 1), (1, 1), (2, NULL);
"""


@pytest.fixture
def target(dsn: str, migrations: MigrationDir) -> Iterator[psycopg.Connection]:
    migrations.add("00001_base.sql", BASE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
        conn.execute(ROWS)
    with connect(dsn, read_only=True) as conn:
        yield conn


def predicted(target: psycopg.Connection, migrations: MigrationDir, body: str) -> list[str]:
    migrations.add("00002_pending.sql", "-- +goose Up\n" + body)
    steps = Migrator(target, migrations.path, GOOSE_TABLE).plan_up()
    return [str(check) for check in predict(target, steps)]


F = "00002_pending.sql"

CASES = {
    "set not null": (
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
        [f"{F}: statement 1 (line 2): users: SET NOT NULL on column email: would fail: 2 row(s) have NULL there"],
    ),
    "set not null on a full column": (
        "ALTER TABLE users ALTER COLUMN id SET NOT NULL;\n",
        [f"{F}: statement 1 (line 2): users: SET NOT NULL on column id: passes: 0 row(s) have NULL there"],
    ),
    "unique index over duplicates": (
        "CREATE UNIQUE INDEX users_handle_key ON users (handle);\n",
        [
            f"{F}: statement 1 (line 2): users: UNIQUE INDEX users_handle_key: would fail:"
            " 1 key value(s) are held by more than one row"
        ],
    ),
    "unique index on an expression": (
        "CREATE UNIQUE INDEX ON users (upper(handle), (age > 20));\n",
        [f"{F}: statement 1 (line 2): users: UNIQUE INDEX: passes: 0 key value(s) are held by more than one row"],
    ),
    "partial unique index": (
        "CREATE UNIQUE INDEX users_adult_handle ON users (handle) WHERE age > 20;\n",
        [
            f"{F}: statement 1 (line 2): users: UNIQUE INDEX users_adult_handle: passes:"
            " 0 key value(s) are held by more than one row"
        ],
    ),
    "unique constraint": (
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n",
        [
            f"{F}: statement 1 (line 2): users: UNIQUE users_email_key (email): passes:"
            " 0 key value(s) are held by more than one row"
        ],
    ),
    "unique nulls not distinct": (
        "ALTER TABLE users ADD UNIQUE NULLS NOT DISTINCT (email);\n",
        [f"{F}: statement 1 (line 2): users: UNIQUE (email): would fail: 1 key value(s) are held by more than one row"],
    ),
    "primary key": (
        "ALTER TABLE pairs ADD PRIMARY KEY (a, b);\n",
        [
            f"{F}: statement 1 (line 2): pairs: PRIMARY KEY (a, b): would fail: 1 row(s) have NULL in a key column",
            f"{F}: statement 1 (line 2): pairs: PRIMARY KEY (a, b): would fail:"
            " 1 key value(s) are held by more than one row",
        ],
    ),
    "foreign key with orphans": (
        "ALTER TABLE posts ADD CONSTRAINT posts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n",
        [
            f"{F}: statement 1 (line 2): posts: FOREIGN KEY posts_user_fk (user_id) REFERENCES users (id):"
            " would fail: 1 row(s) refer to no row of users"
        ],
    ),
    "foreign key to the primary key": (
        "ALTER TABLE public.posts ADD FOREIGN KEY (user_id) REFERENCES public.users;\n",
        [
            f"{F}: statement 1 (line 2): public.posts: FOREIGN KEY (user_id) REFERENCES public.users:"
            " would fail: 1 row(s) refer to no row of public.users"
        ],
    ),
    "foreign key to a table the pending files create": (
        "CREATE TABLE tags (label text PRIMARY KEY);\n"
        "ALTER TABLE posts ADD FOREIGN KEY (body) REFERENCES tags (label);\n",
        [
            f"{F}: statement 2 (line 3): posts: FOREIGN KEY (body) REFERENCES tags (label):"
            " would fail: 3 row(s) refer to no row of tags"
        ],
    ),
    "foreign key over two columns": (
        "CREATE TABLE pair_keys (a int, b int, PRIMARY KEY (a, b));\n"
        "ALTER TABLE pairs ADD FOREIGN KEY (a, b) REFERENCES pair_keys (a, b);\n",
        [
            f"{F}: statement 2 (line 3): pairs: FOREIGN KEY (a, b) REFERENCES pair_keys (a, b):"
            " would fail: 2 row(s) refer to no row of pair_keys"
        ],
    ),
    "foreign key to a new table they fill": (
        "CREATE TABLE tags (label text PRIMARY KEY);\nINSERT INTO tags VALUES ('x');\n"
        "ALTER TABLE posts ADD FOREIGN KEY (body) REFERENCES tags (label);\n",
        [
            f"{F}: statement 3 (line 4): posts: FOREIGN KEY (body) REFERENCES tags (label): may fail:"
            f" 3 row(s) refer to no row of tags; statement 2 (line 3) of {F} runs before it and may change those rows"
        ],
    ),
    "check": (
        "ALTER TABLE users ADD CONSTRAINT adult CHECK (age >= 18);\n",
        [f"{F}: statement 1 (line 2): users: CHECK adult (age >= 18): would fail: 1 row(s) fail the condition"],
    ),
    "not valid constraints are not checked": (
        "ALTER TABLE users ADD CONSTRAINT adult CHECK (age >= 18) NOT VALID;\n"
        "ALTER TABLE posts ADD FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n",
        [],
    ),
    "a column added not null without a default": (
        "ALTER TABLE users ADD COLUMN nickname text NOT NULL, ADD COLUMN score int NOT NULL DEFAULT 0,"
        " ADD COLUMN n bigserial NOT NULL, ADD COLUMN g int NOT NULL GENERATED ALWAYS AS (id) STORED,"
        " ADD COLUMN k int PRIMARY KEY GENERATED ALWAYS AS IDENTITY;\n",
        [
            f"{F}: statement 1 (line 2): users: ADD COLUMN nickname NOT NULL without a default: would fail:"
            " 4 existing row(s) would have NULL there"
        ],
    ),
    "set not null on a column added before it": (
        "ALTER TABLE users ADD COLUMN flag boolean;\nALTER TABLE users ADD COLUMN filled int DEFAULT 1;\n"
        "ALTER TABLE users ALTER COLUMN flag SET NOT NULL, ALTER COLUMN filled SET NOT NULL;\n",
        [f"{F}: statement 3 (line 4): users: SET NOT NULL on column flag: would fail: 4 row(s) would have NULL there"],
    ),
    "a backfill before it": (
        "UPDATE users SET email = 'none' WHERE email IS NULL;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
        [
            f"{F}: statement 2 (line 3): users: SET NOT NULL on column email: may fail: 2 row(s) have NULL there;"
            f" statement 1 (line 2) of {F} runs before it and may change those rows"
        ],
    ),
    "a DO block before it": (
        "-- +goose StatementBegin\nDO $$ BEGIN UPDATE users SET age = 18 WHERE age < 18; END $$;\n"
        "-- +goose StatementEnd\nALTER TABLE users ADD CHECK (age >= 18);\n",
        [
            f"{F}: statement 2 (line 5): users: CHECK (age >= 18): may fail: 1 row(s) fail the condition;"
            f" statement 1 (line 3) of {F} runs before it and may change those rows"
        ],
    ),
    "a count that fails is not a verdict": (
        "ALTER TABLE users ADD CHECK (10 / (age - 15) > 0);\n",
        [
            f"{F}: statement 1 (line 2): users: CHECK (10 / (age - 15) > 0): not checked:"
            " ERROR: division by zero (SQLSTATE 22012)"
        ],
    ),
    "tables the pending files create": (
        "CREATE TABLE tags (id int);\nALTER TABLE tags ALTER COLUMN id SET NOT NULL;\n",
        [],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_check_counts_the_rows_that_violate_it(
    target: psycopg.Connection, migrations: MigrationDir, case: str
) -> None:
    body, expected = CASES[case]
    assert predicted(target, migrations, body) == expected


def test_the_writes_and_checks_of_earlier_files_count_as_earlier(
    target: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add("00002_write.sql", "-- +goose Up\nUPDATE posts SET user_id = user_id;\n")
    migrations.add("00003_fk.sql", "-- +goose Up\nALTER TABLE posts ADD FOREIGN KEY (user_id) REFERENCES users (id);\n")
    steps = Migrator(target, migrations.path, GOOSE_TABLE).plan_up()
    (check,) = predict(target, steps)
    assert check == DataCheck(
        "00003_fk.sql",
        1,
        2,
        "posts",
        "FOREIGN KEY (user_id) REFERENCES users (id)",
        1,
        "row(s) refer to no row of users",
        Verdict.MAY_FAIL,
        "statement 1 (line 2) of 00002_write.sql runs before it and may change those rows",
    )
    assert check.as_dict() == {
        "file": "00003_fk.sql",
        "statement": 1,
        "line": 2,
        "table": "posts",
        "constraint": "FOREIGN KEY (user_id) REFERENCES users (id)",
        "rows": 1,
        "violation": "row(s) refer to no row of users",
        "verdict": "may fail",
        "note": "statement 1 (line 2) of 00002_write.sql runs before it and may change those rows",
    }


def test_writes_that_only_read_or_touch_other_tables_change_no_verdict(
    target: psycopg.Connection, migrations: MigrationDir
) -> None:
    body = (
        "COPY users TO STDOUT;\nTRUNCATE pairs;\nDELETE FROM pairs;\nINSERT INTO pairs VALUES (3, 3);\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
    )
    assert predicted(target, migrations, body) == [
        f"{F}: statement 5 (line 6): users: SET NOT NULL on column email: would fail: 2 row(s) have NULL there"
    ]
    truncated = "TRUNCATE users, pairs;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
    assert predicted(target, migrations, truncated) == [
        f"{F}: statement 2 (line 3): users: SET NOT NULL on column email: may fail: 2 row(s) have NULL there;"
        f" statement 1 (line 2) of {F} runs before it and may change those rows"
    ]


def test_a_role_that_may_not_read_the_rows_gets_no_verdict_and_the_session_goes_on(
    dsn: str, target: psycopg.Connection, migrations: MigrationDir
) -> None:
    catalog_only = login_role(dsn, "catalogs", "catalogs-pw", "GRANT SELECT ON posts TO {}")
    body = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n"
    migrations.add("00002_pending.sql", "-- +goose Up\n" + body)
    steps = Migrator(target, migrations.path, GOOSE_TABLE).plan_up()
    with connect(catalog_only, read_only=True) as conn:
        assert [str(check) for check in predict(conn, steps)] == [
            f"{F}: statement 1 (line 2): users: SET NOT NULL on column email: not checked:"
            " ERROR: permission denied for table users (SQLSTATE 42501)",
            f"{F}: statement 2 (line 3): posts: SET NOT NULL on column body: passes: 0 row(s) have NULL there",
        ]
    query(dsn, f"REVOKE SELECT ON posts FROM catalogs_{target.info.dbname}")


def test_a_count_runs_read_only_under_its_own_timeout(
    dsn: str, target: psycopg.Connection, migrations: MigrationDir
) -> None:
    migrations.add("00002_pending.sql", "-- +goose Up\nALTER TABLE users ADD CHECK (pg_sleep(0.5) IS NOT NULL);\n")
    steps = Migrator(target, migrations.path, GOOSE_TABLE).plan_up()
    (check,) = predict(target, steps, timeout=0.2)
    assert check.verdict is Verdict.NOT_CHECKED
    assert check.note == "ERROR: canceling statement due to statement timeout (SQLSTATE 57014)"
    assert target.execute("SHOW statement_timeout").fetchone() == ("0",)
    migrations.add("00002_pending.sql", "-- +goose Up\nALTER TABLE users ADD CHECK (nextval('writes') > 0);\n")
    query(dsn, "CREATE SEQUENCE writes")
    steps = Migrator(target, migrations.path, GOOSE_TABLE).plan_up()
    (check,) = predict(target, steps)
    assert check.note == "ERROR: cannot execute nextval() in a read-only transaction (SQLSTATE 25006)"


def test_keys_over_columns_the_pending_files_add_are_not_counted(
    target: psycopg.Connection, migrations: MigrationDir
) -> None:
    body = (
        "ALTER TABLE users ADD COLUMN handle2 text, ADD COLUMN owner bigint;\n"
        "CREATE UNIQUE INDEX users_handle2_key ON users (handle2);\n"
        "ALTER TABLE users ADD UNIQUE (handle2), ADD FOREIGN KEY (owner) REFERENCES users (id);\n"
        "ALTER TABLE posts ADD FOREIGN KEY (user_id) REFERENCES users (id);\n"
    )
    assert predicted(target, migrations, body) == [
        f"{F}: statement 4 (line 5): posts: FOREIGN KEY (user_id) REFERENCES users (id): would fail:"
        " 1 row(s) refer to no row of users"
    ]
