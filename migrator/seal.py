"""The sealed no-op: proving ``up`` has nothing to do without reading every file.

After a run that left every file applied and none changed, the ledger's row 0 holds a
digest of goose's table, the ledger's entries and what stands for the files; a later ``up``
that finds the same digest knows the database and the files are exactly as that run left
them. Any write to either table, by goose or by hand, changes the digest and ends the
shortcut, and every writing run of the migrator removes the seal before it changes anything
(only a complete ``up`` seals).

What stands for the files: in the image, its checksum manifest (the image's files cannot
change after the build). In a checkout, each directory entry's name, size, inode, mtime and
ctime, taken before any file is read. An edit, a ``touch -d`` or a replacement moves the
ctime to the time it happens, which no one can set back; so a listing is sealed only when
every entry's ctime and mtime is older than ``SETTLED_NS`` before the listing was taken,
which covers filesystems whose timestamps are as coarse as two seconds. A file edited in
place within the same second with the same size still changes its ctime past the seal's
listing, so it is read and refused as before; a file edited just before the listing is
too fresh to seal, and the files are read on every run until it settles. This trusts the
filesystem's timestamps to come from the clock the migrator reads, as a local one's do (on a
network filesystem whose server's clock runs behind, an edit within its timestamp granularity
of the file's last change could go unseen).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.ledger import Ledger
from migrator.ledger_entries import SEAL_VERSION, manifest_names
from migrator.status import Status
from migrator.store import Store, tolerated

SETTLED_NS = 2_000_000_000


def stat_listing(directory: Path, taken_ns: int) -> str | None:
    """Every entry of ``directory`` with its size, inode, mtime and ctime (symbolic links
    followed), one a line; None when an entry cannot be read or changed within SETTLED_NS
    before ``taken_ns`` (its timestamps could not tell a later edit from it)."""
    lines = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                found = entry.stat()
                if max(found.st_ctime_ns, found.st_mtime_ns) >= taken_ns - SETTLED_NS:
                    return None
                lines.append(f"{entry.name}\0{found.st_size} {found.st_ino} {found.st_mtime_ns} {found.st_ctime_ns}")
    except OSError:
        return None
    return "\n".join(sorted(lines))


class Seal:
    """The seal of one session's goose table over ``directory``; without a directory (files
    given one by one) nothing is sealed."""

    def __init__(
        self, conn: psycopg.Connection, store: Store, ledger: Ledger, directory: Path | None, manifest: str | None
    ):
        self.conn = conn
        self.store = store
        self.ledger = ledger
        self.directory = directory
        self.manifest = manifest
        self._read_before: tuple[str, int, str | None] | None = None  # sealed_current's reading

    def files(self) -> str | None:
        """What stands for the directory's files now: the checksum manifest when it lists
        exactly them, else the directory's settled stat listing; None when neither can. Taken
        before the files are read, so that an edit after it is told by the stat listing."""
        if self.directory is None:
            return None
        text = self.manifest
        if text is not None and sorted(os.listdir(self.directory)) == manifest_names(text):
            return f"manifest\0{text}"
        taken = time.time_ns()
        listing = stat_listing(self.directory, taken)
        return None if listing is None else f"stat\0{self.directory.resolve()}\0{listing}"

    def _read(self) -> tuple[str, int, str | None] | None:
        """A digest of goose's table (every row's id, version and state) and the ledger's
        entries, the highest applied version, and the seal; None without both tables."""
        query = sql.SQL(
            "SELECT coalesce(md5(string_agg(id::text || ' ' || version_id::text || ' ' || is_applied::text,"
            " ',' ORDER BY id)), ''), coalesce(max(version_id) FILTER (WHERE is_applied), 0),"
            " (SELECT coalesce(md5(string_agg(concat_ws(' ', version_id, filename, sha256, state, statements_done,"
            " statements_total), ',' ORDER BY version_id)), '') FROM {ledger} WHERE version_id <> {seal}),"
            " (SELECT sha256 FROM {ledger} WHERE version_id = {seal}) FROM {goose}"
        ).format(goose=self.store.table.identifier, ledger=self.ledger.table.identifier, seal=SEAL_VERSION)
        try:
            with tolerated(self.conn):
                row = self.conn.execute(query).fetchone()
        except pg_errors.UndefinedTable:
            return None
        assert row is not None
        rows, highest, entries, seal = row
        return f"{rows} {highest}\0{entries}", highest, seal

    def _digest(self, files: str, tables: str) -> str:
        return hashlib.sha256(f"{self.store.table}\0{tables}\0{files}".encode()).hexdigest()

    def sealed_current(self, files: str | None) -> int | None:
        """The current version if the last complete run sealed exactly this state."""
        self._read_before = found = None if files is None else self._read()
        if files is None or found is None or found[2] != self._digest(files, found[0]):
            return None
        return found[1]

    def reseal(self, files: str | None, read_status: Callable[[], Status], *, unchanged: Status | None = None) -> None:
        """Seal the state when nothing is left to do: every file applied, none changed.
        ``unchanged``: the status read after sealed_current by a run that wrote nothing to
        either table since; it is sealed with sealed_current's reading of them. Either way the
        tables are read before the status, so that a write between the two (goose takes no lock)
        shows in the next run's reading and ends the seal, never sealing what was not read."""
        if files is None:
            return
        found = self._read_before if unchanged is not None else None
        if found is None:
            found, unchanged = self._read(), None
        if found is None:
            return
        status = unchanged or read_status()
        # A database ahead of these files is reported by every run, never sealed as complete.
        complete = not (status.pending or status.edited or status.vanished or status.interrupted or status.ahead)
        sealed = self._digest(files, found[0]) if complete and status.highest == found[1] else None
        self.conn.execute(self.ledger.seal_sql(sealed))
