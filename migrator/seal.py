"""The sealed no-op: proving ``up`` has nothing to do without reading every file.

The image carries a checksum manifest of its migrations, and its files cannot change
after the build. After a run that left every file applied and none changed, the ledger's
row 0 holds a digest of the goose table and that manifest; a later ``up`` that finds
the same digest knows the database is exactly as that run left it. Any write to the goose
table, by goose or by hand, changes the digest and ends the shortcut, and every writing run
of the migrator removes the seal before it changes anything (only a complete ``up`` seals).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import psycopg

from migrator.ledger import Ledger, manifest_names
from migrator.status import Status
from migrator.store import Store


class Seal:
    """The seal of one session's goose table over ``directory`` and its checksum
    ``manifest``; without either (files given one by one, no manifest) nothing is sealed."""

    def __init__(
        self, conn: psycopg.Connection, store: Store, ledger: Ledger, directory: Path | None, manifest: str | None
    ):
        self.conn = conn
        self.store = store
        self.ledger = ledger
        self.directory = directory
        self.manifest = manifest

    def _state_digest(self) -> tuple[str, int] | None:
        """Digest of everything a no-op ``up`` depends on, and the current version; None
        unless the image's checksum manifest lists exactly the directory's files."""
        text = self.manifest
        if text is None or self.directory is None or sorted(os.listdir(self.directory)) != manifest_names(text):
            return None
        rows, highest = self.store.digest()
        state = f"{self.store.table}\0{rows}\0{text}"
        return hashlib.sha256(state.encode()).hexdigest(), highest

    def sealed_current(self) -> int | None:
        """The current version if the last complete run sealed exactly this state."""
        found = self._state_digest()
        if found is None or found[0] != self.ledger.seal():
            return None
        return found[1]

    def reseal(self, read_status: Callable[[], Status]) -> None:
        """Seal the state when nothing is left to do: every file applied, none changed."""
        found = self._state_digest()
        if found is None:
            return
        status = read_status()
        # A database ahead of these files is reported by every run, never sealed as complete.
        complete = not (status.pending or status.edited or status.vanished or status.interrupted or status.ahead)
        sealed = found[0] if complete and status.highest == found[1] else None
        self.conn.execute(self.ledger.seal_sql(sealed))
