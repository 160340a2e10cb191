"""PostgreSQL's errors in one line an operator can read: the reason and the blocked relation.

Error messages quote them; the run history stores the reason as a failure's cause.
"""

from __future__ import annotations

import re

import psycopg


def pg_reason(exc: psycopg.Error) -> str:
    """Severity, message, SQLSTATE and detail on one line; the driver's text when the server sent none."""
    diag = exc.diag
    if diag.message_primary:
        # The protocol makes severity a field of every message the server sends.
        reason = f"{diag.severity}: {diag.message_primary} (SQLSTATE {diag.sqlstate})"
        if diag.message_detail:
            reason += f" DETAIL: {diag.message_detail}"
        return " ".join(reason.split())
    return " ".join(str(exc).split()) or type(exc).__name__


def blocked_relation(exc: psycopg.Error) -> str | None:
    """The relation a lock_timeout hit waited for, when PostgreSQL names it: only a row
    lock's wait does, in the context line ('while updating tuple (0,1) in relation "t"');
    a table lock's timeout names nothing, and no lock timeout sets the error's table field."""
    found = re.search(r'relation "([^"]+)"', exc.diag.context or "")
    return found.group(1) if found else None
