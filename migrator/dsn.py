"""Connecting with a DSN whose password must never reach an error message or a log."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import conninfo

from migrator.errors import DatabaseError, InputError

APPLICATION_NAME = "migrator"
CONNECT_TIMEOUT_SECONDS = 10
# In the Nomad task, the template says in this variable that the Nomad Variable is missing.
MISSING_DATABASE_ENV = "MIGRATOR_MISSING_DATABASE"


def secrets_in(dsn: str) -> list[str]:
    """Every form in which the DSN's password could be echoed back, longest first."""
    found = {dsn}
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        found.add(str(password))
    try:
        url_password = urlsplit(dsn).password
    except ValueError:
        url_password = None
    if url_password:
        found.update({url_password, unquote(url_password)})
    found.update(m.group(1) for m in re.finditer(r"password\s*=\s*'?([^'\s]+)", dsn))
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    for secret in secrets_in(dsn):
        text = text.replace(secret, "********")
    return text


def describe(dsn: str) -> str:
    """host:port/dbname as user, with no password, for messages."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{params.get('dbname') or params.get('user') or '?'} on {host}:{port}"


def connect(dsn: str, *, read_only: bool = False, timeout_seconds: int = CONNECT_TIMEOUT_SECONDS) -> psycopg.Connection:
    if not dsn:
        hint = "pass --dsn or set POSTGRES_CONNECTION_STRING (or GOOSE_DBSTRING)"
        raise InputError(f"no database: {os.environ.get(MISSING_DATABASE_ENV) or hint}")
    try:
        params = conninfo.make_conninfo(dsn, application_name=APPLICATION_NAME, connect_timeout=timeout_seconds)
        conn = psycopg.connect(params, autocommit=True)
        if conn.info.server_version >= 140000:
            # A killed migrator's statement is cancelled, and its advisory lock freed, within a
            # second, instead of when the statement would have ended.
            conn.execute("SET client_connection_check_interval = '1s'")
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        return conn
    except psycopg.ProgrammingError as exc:
        raise InputError(f"invalid database connection string: {redact(str(exc), dsn)}") from None
    except psycopg.Error as exc:
        reason = " ".join(redact(str(exc), dsn).split())
        raise DatabaseError(f"cannot connect to {describe(dsn)}: {reason}") from None
