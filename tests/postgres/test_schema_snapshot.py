"""The canonical schema snapshot, read from a real PostgreSQL's catalogs: every kind of object
with its identity and definition, what is left out, and the per-schema digests."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from migrator import Migrator, TableName
from migrator.history import History
from migrator.schema_snapshot import Snapshot, schema_digests, take_snapshot
from tests.support import MigrationDir, query, table_file

GOOSE_TABLE = TableName.parse("_migrations")

# One of each kind of object, in a schema of its own and in public.
SCHEMA = """
CREATE EXTENSION pgcrypto;
CREATE SCHEMA app;
CREATE ROLE snapshot_reader_{db};
CREATE TYPE app.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN app.positive AS int NOT NULL DEFAULT 1 CONSTRAINT positive_check CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a int, b text);
CREATE TABLE app.t (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL DEFAULT 'x',
    mood app.mood,
    n app.positive,
    twice bigint GENERATED ALWAYS AS (id * 2) STORED,
    CONSTRAINT t_name_key UNIQUE (name)
);
CREATE TABLE app.u (id serial PRIMARY KEY, t_id bigint);
ALTER TABLE app.u ADD CONSTRAINT u_t_fk FOREIGN KEY (t_id) REFERENCES app.t (id) NOT VALID;
CREATE INDEX u_t_idx ON app.u (t_id) WHERE t_id > 0;
CREATE VIEW app.v WITH (security_invoker) AS SELECT id, name FROM app.t;
CREATE MATERIALIZED VIEW app.counted AS SELECT count(*) AS n FROM app.u;
CREATE FUNCTION app.f(x int, y app.mood) RETURNS int LANGUAGE sql AS $$ SELECT x $$;
CREATE PROCEDURE app.p() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE AGGREGATE app.total(int) (sfunc = int4pl, stype = int);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE UPDATE ON app.t FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app.t DISABLE TRIGGER touch;
ALTER TABLE app.t ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.u ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.u FORCE ROW LEVEL SECURITY;
CREATE POLICY readable ON app.t AS RESTRICTIVE FOR SELECT TO snapshot_reader_{db} USING (name <> '');
CREATE POLICY insertable ON app.t FOR INSERT WITH CHECK (id > 0);
GRANT SELECT ON app.t TO snapshot_reader_{db};
GRANT UPDATE (name) ON app.t TO snapshot_reader_{db};
GRANT USAGE ON SCHEMA app TO snapshot_reader_{db} WITH GRANT OPTION;
REVOKE EXECUTE ON FUNCTION app.f(int, app.mood) FROM PUBLIC;
CREATE SEQUENCE app.s AS int START 5 INCREMENT 2 CYCLE;
CREATE UNLOGGED TABLE public.parted (a int, b int) PARTITION BY RANGE (a);
CREATE TABLE public.part1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.base (a int);
CREATE TABLE public.child (c int) INHERITS (public.base);
"""


@pytest.fixture
def reader(conn: psycopg.Connection) -> Iterator[str]:
    """A role of the test's own (roles are the server's: the name carries the database's)."""
    name = f"snapshot_reader_{conn.info.dbname}"
    conn.execute(SCHEMA.replace("{db}", conn.info.dbname))
    yield name
    conn.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")


def definitions(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    return {key: found.definition for key, found in snapshot.objects.items()}


def test_every_kind_of_object_has_its_identity_and_canonical_definition(conn: psycopg.Connection, reader: str) -> None:
    found = definitions(take_snapshot(conn, GOOSE_TABLE))
    app = {key: value for key, value in found.items() if key[0] not in ("function", "procedure")}
    assert app == {
        ("aggregate", "app.total(integer)"): "AGGREGATE RETURNS integer",
        ("column", "app.t.id"): "bigint NOT NULL GENERATED ALWAYS AS IDENTITY",
        ("column", "app.t.mood"): "app.mood",
        ("column", "app.t.n"): "app.positive",
        ("column", "app.t.name"): "text COLLATE \"C\" NOT NULL DEFAULT 'x'::text",
        ("column", "app.t.twice"): "bigint GENERATED ALWAYS AS ((id * 2)) STORED",
        ("column", "app.u.id"): "integer NOT NULL DEFAULT nextval('app.u_id_seq'::regclass)",
        ("column", "app.u.t_id"): "bigint",
        ("column", "public.base.a"): "integer",
        ("column", "public.child.a"): "integer",
        ("column", "public.child.c"): "integer",
        ("column", "public.part1.a"): "integer",
        ("column", "public.part1.b"): "integer",
        ("column", "public.parted.a"): "integer",
        ("column", "public.parted.b"): "integer",
        ("constraint", "app.positive.positive_check"): "CHECK ((VALUE > 0))",
        ("constraint", "app.t.t_name_key"): "UNIQUE (name)",
        ("constraint", "app.t.t_pkey"): "PRIMARY KEY (id)",
        ("constraint", "app.u.u_pkey"): "PRIMARY KEY (id)",
        ("constraint", "app.u.u_t_fk"): "FOREIGN KEY (t_id) REFERENCES app.t(id) NOT VALID",
        ("extension", "pgcrypto"): "SCHEMA public VERSION '1.3'",
        ("grant", "column app.t.name TO " + reader): "UPDATE",
        ("grant", "function app.f(x integer, y app.mood) TO (owner)"): "EXECUTE",
        ("grant", "schema app TO (owner)"): "CREATE, USAGE",
        ("grant", "schema app TO " + reader): "USAGE WITH GRANT OPTION",
        ("grant", "schema public TO (owner)"): "CREATE, USAGE",
        ("grant", "schema public TO PUBLIC"): "USAGE",
        ("grant", "table app.t TO (owner)"): "DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE",
        ("grant", "table app.t TO " + reader): "SELECT",
        ("index", "app.u_t_idx"): "CREATE INDEX u_t_idx ON app.u USING btree (t_id) WHERE (t_id > 0)",
        ("policy", "app.t.insertable"): "AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK ((id > 0))",
        ("policy", "app.t.readable"): f"AS RESTRICTIVE FOR SELECT TO {reader} USING ((name <> ''::text))",
        ("schema", "app"): "SCHEMA",
        ("schema", "public"): "SCHEMA",
        ("sequence", "app.s"): "AS integer START 5 INCREMENT 2 MINVALUE 1 MAXVALUE 2147483647 CACHE 1 CYCLE",
        ("sequence", "app.t_id_seq"): (
            "AS bigint START 1 INCREMENT 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1 OWNED BY app.t.id"
        ),
        ("sequence", "app.u_id_seq"): (
            "AS integer START 1 INCREMENT 1 MINVALUE 1 MAXVALUE 2147483647 CACHE 1 OWNED BY app.u.id"
        ),
        ("table", "app.t"): "TABLE ROW LEVEL SECURITY",
        ("table", "app.u"): "TABLE ROW LEVEL SECURITY FORCE ROW LEVEL SECURITY",
        ("table", "public.base"): "TABLE",
        ("table", "public.child"): "TABLE INHERITS (public.base)",
        ("table", "public.part1"): "TABLE PARTITION OF public.parted FOR VALUES FROM (0) TO (10)",
        ("table", "public.parted"): "PARTITIONED TABLE UNLOGGED PARTITION BY RANGE (a)",
        ("trigger", "app.t.touch"): (
            "CREATE TRIGGER touch BEFORE UPDATE ON app.t FOR EACH ROW EXECUTE FUNCTION app.touch() (DISABLED)"
        ),
        ("type", "app.mood"): "ENUM ('sad', 'happy')",
        ("type", "app.pair"): "COMPOSITE (a integer, b text)",
        ("type", "app.positive"): "DOMAIN integer NOT NULL DEFAULT 1",
        ("view", "app.counted"): "MATERIALIZED VIEW AS  SELECT count(*) AS n\n   FROM app.u;",
        ("view", "app.v"): "VIEW WITH (security_invoker=true) AS  SELECT t.id,\n    t.name\n   FROM app.t;",
    }
    functions = {key: value for key, value in found.items() if key[0] in ("function", "procedure")}
    assert sorted(functions) == [
        ("function", "app.f(x integer, y app.mood)"),
        ("function", "app.touch()"),
        ("procedure", "app.p()"),
    ]
    assert functions[("function", "app.f(x integer, y app.mood)")] == (
        "CREATE OR REPLACE FUNCTION app.f(x integer, y app.mood)\n RETURNS integer\n LANGUAGE sql\n"
        "AS $function$ SELECT x $function$\n"
    )
    assert functions[("procedure", "app.p()")] == (
        "CREATE OR REPLACE PROCEDURE app.p()\n LANGUAGE sql\nAS $procedure$ SELECT 1 $procedure$\n"
    )


def test_each_object_names_its_schema(conn: psycopg.Connection, reader: str) -> None:
    snapshot = take_snapshot(conn, GOOSE_TABLE)
    assert snapshot.objects[("extension", "pgcrypto")].schema == "public"
    assert snapshot.objects[("grant", "table app.t TO " + reader)].schema == "app"
    assert snapshot.schemas == {"app", "public"}
    assert str(snapshot.objects[("column", "app.t.id")]) == "column app.t.id"


def test_the_session_search_path_changes_nothing_and_is_left_as_it_was(conn: psycopg.Connection, reader: str) -> None:
    plain = take_snapshot(conn, GOOSE_TABLE)
    conn.execute("SET search_path = app, public")
    assert take_snapshot(conn, GOOSE_TABLE) == plain
    assert conn.execute("SHOW search_path").fetchone() == ("app, public",)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_only_the_schemas_asked_for(conn: psycopg.Connection, reader: str) -> None:
    snapshot = take_snapshot(conn, GOOSE_TABLE, ["public"])
    assert snapshot.schemas == {"public"}
    assert ("table", "public.parted") in snapshot.objects
    assert take_snapshot(conn, GOOSE_TABLE, []).objects == {}


def test_extension_members_and_the_migrators_own_tables_are_left_out(
    conn: psycopg.Connection, dsn: str, migrations: MigrationDir
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
    History(conn, GOOSE_TABLE).ensure()
    conn.execute("CREATE EXTENSION pgcrypto")
    assert query(dsn, "SELECT count(*) FROM pg_proc WHERE proname = 'crypt'") == [(1,)]
    assert sorted(take_snapshot(conn, GOOSE_TABLE).objects) == [
        ("column", "public.a.id"),
        ("extension", "pgcrypto"),
        ("grant", "schema public TO (owner)"),
        ("grant", "schema public TO PUBLIC"),
        ("schema", "public"),
        ("table", "public.a"),
    ]


def test_a_schema_qualified_goose_table_leaves_out_its_own_tables_only(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA meta; CREATE TABLE meta._migrations (id int); CREATE TABLE public._migrations (id int)")
    conn.execute("CREATE TABLE meta._migrations_ledger (id int); CREATE TABLE meta._migrations_runs (id int)")
    found = take_snapshot(conn, TableName.parse("meta._migrations"))
    assert [key for key in found.objects if key[0] == "table"] == [("table", "public._migrations")]


def test_digests_are_per_schema_and_change_with_any_definition(conn: psycopg.Connection, reader: str) -> None:
    before = schema_digests(conn, GOOSE_TABLE)
    assert sorted(before) == ["app", "public"]
    assert all(len(digest) == 64 for digest in before.values())
    assert schema_digests(conn, GOOSE_TABLE) == before
    conn.execute("ALTER TABLE app.u ALTER COLUMN t_id TYPE int")
    after = schema_digests(conn, GOOSE_TABLE)
    assert after["public"] == before["public"]
    assert after["app"] != before["app"]


def test_two_databases_built_alike_have_equal_snapshots_and_digests(
    pg_admin_dsn: str, migrations: MigrationDir
) -> None:
    from tools import pgserver  # noqa: PLC0415

    migrations.add("00001_a.sql", table_file("a").replace("(id int)", "(id int PRIMARY KEY, b text DEFAULT 'b')"))
    found = []
    for _ in range(2):
        with pgserver.fresh_database(pg_admin_dsn) as other, psycopg.connect(other, autocommit=True) as conn:
            Migrator(conn, migrations.path, GOOSE_TABLE).up(lock_wait=10)
            found.append(take_snapshot(conn, GOOSE_TABLE))
    assert found[0] == found[1]
    assert found[0].digests() == found[1].digests()
    assert ("constraint", "public.a.a_pkey") in found[0].objects
