"""The timeouts every migration runs under, and how a file a lock blocked is retried.

These are PostgreSQL's ``lock_timeout``, ``statement_timeout`` and
``idle_in_transaction_session_timeout`` inside a migration; how long a command waits for
goose's advisory lock is a separate setting (``lock_wait``).

A statement waiting for a lock queues every later request for that table behind its own:
while an ``ALTER TABLE`` waits for ACCESS EXCLUSIVE, the application's reads and writes of the
table wait too. So each attempt waits briefly, and a blocked file is rolled back and tried
again after a pause drawn at random up to a cap that doubles with each retry ("full
jitter"), giving the application the table back in between.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from migrator.durations import milliseconds


@dataclass(frozen=True)
class Safety:
    """Timeouts every migration runs under, and how often a lock-blocked file is retried."""

    # bench/lock_stall.py: each attempt stalls the application's use of the table for as long as
    # it waits; at 0.5s the worst read took 0.52s and throughput held (5s: 5.0s and 14%).
    lock_timeout: float = 0.5
    # The migrator this replaces gave every statement 3 hours: a long index build must fit.
    statement_timeout: float = 3 * 3600.0
    # At most about 71s of attempts and pauses per file (16 x 0.5s, and pauses capped at 0.5s,
    # 1s, 2s, 4s, then 5s), as the old defaults' 61s: a long transaction in the way is waited
    # out, not failed at once. A deployment's run budget (--run-timeout) bounds them too.
    lock_retries: int = 15
    first_backoff: float = 0.5
    max_backoff: float = 5.0
    # The migrator sends a file's statements back to back: a transaction of its left idle this
    # long lost its client (a dead network behind a pooler), and the server ends it.
    idle_timeout: float = 15.0

    def set_statements(self, *, local: bool) -> str:
        """One round trip that sets the timeouts, for the transaction or the session."""
        return "; ".join(self.each_set(local=local))

    def each_set(self, *, local: bool) -> list[str]:
        """The timeouts' SET commands, one each (a pipeline sends one command per message)."""
        command = "SET LOCAL" if local else "SET"
        return [
            f"{command} lock_timeout = '{milliseconds(self.lock_timeout)}ms'",
            f"{command} statement_timeout = '{milliseconds(self.statement_timeout)}ms'",
            f"{command} idle_in_transaction_session_timeout = '{milliseconds(self.idle_timeout)}ms'",
        ]

    def backoff_cap(self, retry: int) -> float:
        """The longest pause before retry ``retry`` (from 1): doubling, at most ``max_backoff``."""
        return float(min(self.first_backoff * 2 ** (retry - 1), self.max_backoff))

    def backoff(self, retry: int) -> float:
        """The pause before retry ``retry``: anywhere up to its cap, so that waiters spread out."""
        return random.uniform(0, self.backoff_cap(retry))
