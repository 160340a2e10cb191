"""The db-migrator task's memory, sized from the largest migration file its image carries.

Nomad kills a task that outgrows its memory: exit 137, nothing printed, nothing in the run
history but a run the next one closes as lost. ``python -m bench.memory`` measured the
migrator's peak at about 44 MB with a one-row file, plus about 2 MB per MB of a seed of
ordinary INSERTs and about 6.6 MB per MB of one INSERT of every row (a statement over
``pg_grammar.GRAMMAR_LIMIT`` is scanned, not parsed, so the C parser's tree of eleven times
its size is never built). The reservation holds the worst of those with room to spare, and
is never below the 128 MB the task always had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

BASE_MB = 64  # the interpreter, psycopg and pglast, with room
MB_PER_MB = 7  # of the largest file
FLOOR_MB = 128


def migrator_memory(files: Iterable[Path]) -> int:
    """MiB to reserve for a migrator whose image carries ``files``."""
    largest = max((path.stat().st_size for path in files), default=0)
    return max(FLOOR_MB, BASE_MB + math.ceil(MB_PER_MB * largest / 2**20))
