"""Connecting with a DSN whose password must never reach an error message or a log.

A DSN is checked before libpq sees it: libpq's own complaints about a malformed one quote
the offending part, which can be the password (an unencoded ``/`` or ``@`` in a URL moves
it into the host or database name). A DSN that cannot be read one way only is refused
without echoing any of it. Messages about a well-formed DSN name the user, host and
database, never the password. The options of goose's driver (pgx) that libpq does not
know are dropped: a goose user's connection string works as it is.

No session made here prepares statements on the server or sets anything for the session:
behind a pooler in transaction mode, the server connection goes to another client after
each transaction, with whatever the session left on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import conninfo

from migrator.errors import DatabaseError, InputError

APPLICATION_NAME = "migrator"
MASK = "********"
_URL_SCHEMES = ("postgresql://", "postgres://")

# libpq options the DSN may set itself; these are only the defaults. A dead network is
# noticed by keepalives within about a minute instead of never: a migrator that hangs
# holds the advisory lock and an open transaction on the server.
CLIENT_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
# Parameters of pgx, goose's driver, that libpq does not know: how pgx sends statements
# (default_query_exec_mode=simple_protocol is how goose is run behind PgBouncer), its
# statement caches and its pool. None has a meaning here: nothing is prepared on the server.
PGX_ONLY = frozenset(
    {
        "default_query_exec_mode",
        "statement_cache_capacity",
        "description_cache_capacity",
        "pool_max_conns",
        "pool_min_conns",
        "pool_min_idle_conns",
        "pool_max_conn_lifetime",
        "pool_max_conn_lifetime_jitter",
        "pool_max_conn_idle_time",
        "pool_health_check_period",
        "pool_ping_timeout",
    }
)
# One keyword=value pair as libpq reads it: a value is single-quoted (with \' and \\) or runs to the next space.
_PAIR = re.compile(r"\s*([^\s=]+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)*)")
_UNKNOWN = re.compile(r'invalid (?:URI query parameter: |connection option )"([^"]*)"')
_UNREADABLE = (
    "the database connection string cannot be read unambiguously{why}; it is not shown, since it may hold"
    " the password. In a URL, percent-encode '@', ':', '/', '?' and '#' in the user name and password"
    " (e.g. '/' as %2F, '@' as %40)"
)


def _url_ambiguity(dsn: str) -> str | None:
    """Why a ``postgresql://`` URL could mean more than one thing, or None."""
    rest = dsn.split("://", 1)[1]
    authority_end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority, after = rest[:authority_end], rest[authority_end:]
    if authority.count("@") > 1:
        return " (more than one '@' before the host)"
    if "@" in after:
        return " (an '@' after the host part: the password probably holds a '/', '?' or '#')"
    return None


def _keyword_pairs(dsn: str) -> list[tuple[str, str]] | None:
    """The ``keyword=value`` pairs of a DSN in that form, each with its text; None where libpq
    would not read it (it says so itself, later)."""
    pairs, position = [], 0
    while dsn[position:].strip():
        found = _PAIR.match(dsn, position)
        if found is None:
            return None
        pairs.append((found[1], found[0].strip()))
        position = found.end()
    return pairs


def _without_pgx_options(dsn: str) -> tuple[str, list[str]]:
    """``dsn`` without the parameters only pgx knows, and their names as written."""
    if dsn.startswith(_URL_SCHEMES):
        base, mark, query = dsn.partition("?")
        pairs = [(unquote(pair.partition("=")[0]), pair) for pair in query.split("&")] if mark else []
        kept = "&".join(text for name, text in pairs if name not in PGX_ONLY)
        rebuilt = f"{base}?{kept}" if kept else base
    else:
        pairs = _keyword_pairs(dsn) or []
        rebuilt = " ".join(text for name, text in pairs if name not in PGX_ONLY)
    dropped = [name for name, _ in pairs if name in PGX_ONLY]
    return (rebuilt, dropped) if dropped else (dsn, [])


def _unknown_parameter(libpq_message: str, dsn: str) -> InputError:
    """The refusal of a DSN libpq would not read: the parameter it does not know, by name (a name
    is no secret), unless that name may be part of an unquoted password with a space in it."""
    unknown = _UNKNOWN.search(libpq_message)
    if unknown is None:
        return InputError(_UNREADABLE.format(why=""))
    name = unknown[1]
    after_password = rf"password\s*=\s*[^'\s]\S*\s+{re.escape(name)}\s*="
    if not dsn.startswith(_URL_SCHEMES) and re.search(after_password, dsn):
        return InputError(_UNREADABLE.format(why=" (a space in an unquoted password?)"))
    return InputError(
        f"the database connection string has the parameter {name!r}, which libpq does not know: remove it"
        f" (a server setting, which goose's driver pgx passes on, is written options='-c {name}=VALUE')"
    )


def _read(dsn: str) -> tuple[str, dict[str, str], list[str]]:
    """The DSN libpq is given (pgx's own options dropped), its parameters, and the dropped names."""
    try:
        dsn.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(_UNREADABLE.format(why=" (it is not valid UTF-8)")) from None
    if dsn.startswith(_URL_SCHEMES) and (why := _url_ambiguity(dsn)):
        raise InputError(_UNREADABLE.format(why=why))
    readable, dropped = _without_pgx_options(dsn)
    try:
        parsed = conninfo.conninfo_to_dict(readable)
    except psycopg.ProgrammingError as exc:
        raise _unknown_parameter(str(exc), readable) from None
    params = {key: str(value) for key, value in parsed.items() if value is not None}
    for port in params.get("port", "").split(","):
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise InputError("the port in the database connection string is not a number from 1 to 65535")
    return readable, params, dropped


def parse(dsn: str) -> dict[str, str]:
    """libpq's parameters of ``dsn``; InputError, quoting nothing of it, when malformed."""
    return _read(dsn)[1]


def pgx_options(dsn: str) -> list[str]:
    """The parameters of ``dsn`` only goose's driver knows: connecting drops them."""
    return _read(dsn)[2]


def redact(text: str, dsn: str) -> str:
    """``text`` with the DSN and its password masked wherever they stand as credentials, and
    any ``password=`` or URL password: a DSN typed without ``--dsn`` is quoted back as an
    unrecognized argument before any DSN was read."""
    if dsn:
        text = text.replace(dsn, MASK)
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", rf"\g<1>{MASK}", text)
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", rf"\g<1>{MASK}@", text)
    for secret in _password_forms(dsn):
        # Whole tokens only: a one-letter password must not mask every such letter of prose.
        text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return text


def _password_forms(dsn: str) -> set[str]:
    try:
        params = parse(dsn)
    except InputError:
        return set()
    password = params.get("password")
    # Equal to the user, host or database name, it is shown under that name anyway.
    if not password or password in {params.get(k) for k in ("user", "host", "dbname")}:
        return set()
    forms = {password, quote(password, safe=""), quote(password)}
    if dsn.startswith(_URL_SCHEMES):
        forms.add(urlsplit(dsn).password or password)
    return forms


def describe(params: Mapping[str, str]) -> str:
    """``dbname on host:port``, with no password, for messages."""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    return f"{params.get('dbname') or params.get('user') or '?'} on {host}:{params.get('port') or '5432'}"


def connect(
    dsn: str, *, read_only: bool = False, timeout_seconds: int | None = None, missing: str = ""
) -> psycopg.Connection:
    """A session for a writing run, in autocommit mode (the migrator opens each migration's
    transaction itself); or, ``read_only``, one whose statements run in a read-only
    transaction that ends with its ``with`` block. Neither prepares statements on the server
    nor sets anything for the session. ``timeout_seconds`` replaces the default connect_timeout,
    never one the DSN sets. ``missing`` says what to do when ``dsn`` is empty, in place of the
    command line's flags."""
    if not dsn:
        hint = "pass --dsn or set POSTGRES_CONNECTION_STRING (or GOOSE_DBSTRING)"
        raise InputError(f"no database: {missing or hint}")
    readable, params, _ = _read(dsn)
    defaults = dict(CLIENT_DEFAULTS, connect_timeout=str(timeout_seconds or CLIENT_DEFAULTS["connect_timeout"]))
    defaults = {key: value for key, value in defaults.items() if key not in params}
    try:
        conn = psycopg.connect(
            conninfo.make_conninfo(readable, application_name=APPLICATION_NAME, **defaults),
            autocommit=not read_only,
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        reason = " ".join(redact(str(exc), dsn).split())
        raise DatabaseError(f"cannot connect to {describe(params)}: {reason}") from None
    if read_only:
        conn.read_only = True
    return conn
