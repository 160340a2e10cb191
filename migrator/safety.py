"""The timeouts every migration runs under, and how a file a lock blocked is retried.

These are PostgreSQL's ``lock_timeout``, ``statement_timeout`` and
``idle_in_transaction_session_timeout`` inside a migration; how long a command waits for
goose's advisory lock is a separate setting (``lock_wait``).
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.durations import milliseconds


@dataclass(frozen=True)
class Safety:
    """Timeouts every migration runs under, and how often a lock-blocked file is retried."""

    lock_timeout: float = 5.0
    # The migrator this replaces gave every statement 3 hours: a long index build must fit.
    statement_timeout: float = 3 * 3600.0
    lock_retries: int = 5
    first_backoff: float = 1.0
    max_backoff: float = 30.0
    # The migrator sends a file's statements back to back: a transaction of its left idle this
    # long lost its client (a dead network behind a pooler), and the server ends it.
    idle_timeout: float = 15.0

    def set_statements(self, *, local: bool) -> str:
        """One round trip that sets the timeouts, for the transaction or the session."""
        command = "SET LOCAL" if local else "SET"
        return (
            f"{command} lock_timeout = '{milliseconds(self.lock_timeout)}ms';"
            f" {command} statement_timeout = '{milliseconds(self.statement_timeout)}ms';"
            f" {command} idle_in_transaction_session_timeout = '{milliseconds(self.idle_timeout)}ms'"
        )
