"""Connection strings read without ever quoting them (migrator/dsn.py), in process; and a
goose user's connection string, with its driver's own options, against the test server."""

from __future__ import annotations

import pytest
from psycopg import conninfo

from migrator.dsn import MASK, parse, pgx_options, redact
from migrator.errors import InputError
from tests.support import MigrationDir, table_file, versions
from tests.support.cli_runner import run_cli

UNREADABLE = (
    "the database connection string cannot be read unambiguously ({why}); it is not shown, since it may hold"
    " the password. In a URL, percent-encode '@', ':', '/', '?' and '#' in the user name and password"
    " (e.g. '/' as %2F, '@' as %40)"
)
TWO_ATS = "more than one '@' before the host"
AT_AFTER_HOST = "an '@' after the host part: the password probably holds a '/', '?' or '#'"


@pytest.mark.parametrize(
    ("dsn", "why"),
    [
        ("postgresql://u:p@ss@host/db", TWO_ATS),
        ("postgresql://u:pa/ss@host/db", AT_AFTER_HOST),
        ("postgres://u:pa?ss@host/db", AT_AFTER_HOST),
        ("postgresql://u:p#x@h/db", AT_AFTER_HOST),
        # Nothing before the path: any '@' is after the host part.
        ("postgresql:///a@b", AT_AFTER_HOST),
        # Only the first '://' starts the URL; a later one belongs to a value.
        ("postgresql://u:p@h/db?application_name=a://b@c", AT_AFTER_HOST),
    ],
)
def test_an_ambiguous_url_is_refused_without_quoting_it(dsn: str, why: str) -> None:
    with pytest.raises(InputError) as refused:
        parse(dsn)
    assert str(refused.value) == UNREADABLE.format(why=why)


@pytest.mark.parametrize(
    ("dsn", "params"),
    [
        ("postgresql://u@host", {"user": "u", "host": "host"}),
        ("postgresql://Xavier:pX@hostX/dbX", {"user": "Xavier", "password": "pX", "host": "hostX", "dbname": "dbX"}),
        (
            "postgresql://u:p%40ss@h/db?application_name=a%40b",
            {"user": "u", "password": "p@ss", "host": "h", "dbname": "db", "application_name": "a@b"},
        ),
    ],
)
def test_a_url_without_a_path_or_with_encoded_characters_reads(dsn: str, params: dict[str, str]) -> None:
    assert parse(dsn) == params


@pytest.mark.parametrize("field", ["user", "host", "dbname"])
def test_a_password_equal_to_a_name_the_message_shows_masks_nothing(field: str) -> None:
    """It is shown under that name anyway; masking it would hide which user or database failed."""
    params = {"user": "app", "host": "db.internal", "dbname": "orders"}
    dsn = conninfo.make_conninfo(**params, password=params[field])
    text = 'connection to server at "db.internal" failed: password authentication failed for user "app" (orders)'
    assert redact(text, dsn) == text
    other = conninfo.make_conninfo(**params, password="s3cret")
    assert redact(f"{text}; sent s3cret", other) == f"{text}; sent {MASK}"


def test_a_password_a_message_quotes_is_masked_even_when_the_dsn_cannot_be_read() -> None:
    """An unreadable DSN gives no password to look for: the forms libpq quotes are masked anyway."""
    text = "libpq: host=h password=p4ss port=1; postgresql://u:p4ss@h/db; password = 'p 4ss'"
    assert redact(text, "not a connection string") == (
        f"libpq: host=h password={MASK} port=1; postgresql://u:{MASK}@h/db; password = {MASK}"
    )


def test_every_spelling_of_a_url_password_is_masked() -> None:
    """As written in the URL (here lower-case hex), percent-encoded as libpq or a driver would, and decoded."""
    dsn = "postgresql://u:p%2fw@h/db"
    assert redact("sent p%2fw, then p%2Fw, then p/w", dsn) == f"sent {MASK}, then {MASK}, then {MASK}"


@pytest.mark.parametrize("port", ["1", "5432", "65535", "5432,6432"])
def test_a_port_from_1_to_65535_reads(port: str) -> None:
    assert parse(f"host=h,h2 port={port} dbname=db")["port"] == port


@pytest.mark.parametrize("port", ["0", "65536", "99999", "5432,0", "٥٤٣٢"])
def test_any_other_port_is_refused(port: str) -> None:
    with pytest.raises(InputError) as refused:
        parse(f"host=h port={port} dbname=db")
    assert str(refused.value) == "the port in the database connection string is not a number from 1 to 65535"


# -- goose's connection strings: pgx's own options ------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "readable", "dropped"),
    [
        (
            "postgresql://u:p@h/db?sslmode=disable&default_query_exec_mode=simple_protocol&statement_cache_capacity=0",
            {"user": "u", "password": "p", "host": "h", "dbname": "db", "sslmode": "disable"},
            ["default_query_exec_mode", "statement_cache_capacity"],
        ),
        (
            "postgres://u@h/db?pool_max_conns=4&default%5Fquery%5Fexec%5Fmode=exec",
            {"user": "u", "host": "h", "dbname": "db"},
            ["pool_max_conns", "default_query_exec_mode"],
        ),
        (
            "host=h password='a b' description_cache_capacity = 0 dbname=x pool_health_check_period=1m",
            {"host": "h", "password": "a b", "dbname": "x"},
            ["description_cache_capacity", "pool_health_check_period"],
        ),
        (
            "host=h application_name='x default_query_exec_mode=simple_protocol'",
            {"host": "h", "application_name": "x default_query_exec_mode=simple_protocol"},
            [],
        ),
    ],
)
def test_the_options_only_goose_s_driver_knows_are_dropped_and_named(
    dsn: str, readable: dict[str, str], dropped: list[str]
) -> None:
    assert parse(dsn) == readable
    assert pgx_options(dsn) == dropped


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:s3cret@h/db?sslmode=disable&search_path=app", "password=s3cret host=h search_path=app"]
)
def test_a_parameter_libpq_does_not_know_is_named_as_such(dsn: str) -> None:
    with pytest.raises(InputError) as refused:
        parse(dsn)
    assert str(refused.value) == (
        "the database connection string has the parameter 'search_path', which libpq does not know: remove it"
        " (a server setting, which goose's driver pgx passes on, is written options='-c search_path=VALUE')"
    )


def test_an_unknown_name_that_may_be_part_of_an_unquoted_password_is_not_shown() -> None:
    with pytest.raises(InputError) as refused:
        parse("host=h password=two words=here")
    assert str(refused.value) == UNREADABLE.format(why="a space in an unquoted password?")


def test_a_goose_connection_string_with_pgx_options_connects_with_a_warning(dsn: str, migrations: MigrationDir) -> None:
    """default_query_exec_mode=simple_protocol is how goose is run behind PgBouncer."""
    params = conninfo.conninfo_to_dict(dsn)
    url = (
        f"postgresql://{params['user']}:{params['password']}@{params['host']}:{params['port']}/{params['dbname']}"
        "?sslmode=disable&default_query_exec_mode=simple_protocol&statement_cache_capacity=0"
    )
    migrations.add("00001_a.sql", table_file("a"))
    result = run_cli("up", dsn=url, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "migrator: warning: ignoring default_query_exec_mode, statement_cache_capacity in the connection string:"
        " options of goose's driver (pgx) that libpq does not know; the migrator prepares no statement on the"
        " server\n"
    )
    assert versions(dsn) == [0, 1]
    unknown = run_cli("status", dsn=f"{url}&search_path=app", directory=migrations.path)
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "migrator: error: the database connection string has the parameter 'search_path', which libpq does not"
        " know: remove it (a server setting, which goose's driver pgx passes on, is written"
        " options='-c search_path=VALUE')\n",
    )
