"""The migrations directory against the database: applied, pending, and drifted files.

goose's table says which versions are applied and in which order; the ledger beside it
says which checksum each was applied with and which NO TRANSACTION run stopped part-way.
Comparing both with the files finds what was edited or removed since it was applied;
versions newer than every file are not removed files but a newer image's (``ahead``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from migrator.interruptions import InterruptedRun, from_entry
from migrator.ledger_entries import LedgerUnreadable, State, checksums
from migrator.refusals import VanishedFile
from migrator.source import Migration

if TYPE_CHECKING:
    from migrator.ledger import Ledger
    from migrator.store import Store


@dataclass(frozen=True)
class MigrationState:
    """One migration file and whether, and when, it was applied."""

    migration: Migration
    applied: bool
    applied_at: datetime | None  # None when not applied, or when times were not read


@dataclass(frozen=True)
class Status:
    """The files beside the database's version rows: applied, pending, and every fact a run refuses on."""

    current: int  # goose's current version: the most recently applied one, by the table's ids
    migrations: list[MigrationState]
    unknown_applied: list[int]  # versions recorded in the table with no file
    edited: list[Migration] = field(default_factory=list)  # applied, and the file changed since
    # Applied with a checksum, and its file is gone although a newer file is here.
    vanished: list[VanishedFile] = field(default_factory=list)
    interrupted: list[InterruptedRun] = field(default_factory=list)  # NO TRANSACTION run that died part-way
    unrecorded: list[Migration] = field(default_factory=list)  # applied before checksums existed
    applied_order: list[int] = field(default_factory=list)  # applied versions, oldest application first
    ledger_unreadable: str | None = None  # why checksums could not be compared, in a read-only command

    @property
    def pending(self) -> list[Migration]:
        return [s.migration for s in self.migrations if not s.applied]

    @property
    def highest(self) -> int:
        return max(self.applied_order, default=0)

    @property
    def newest_file(self) -> int:
        return max((s.migration.version for s in self.migrations), default=0)

    @property
    def ahead(self) -> list[int]:
        """Applied versions newer than every file: a newer image applied them. That is no
        drift (goose finds nothing to do there either), unlike a file gone from within the range."""
        newest = self.newest_file  # once: it reads every file's version
        return sorted(v for v in self.applied_order if v > newest)


def read_status(
    store: Store,
    ledger: Ledger,
    migrations: list[Migration],
    manifest: str | None,
    *,
    tolerate_unreadable_ledger: bool = False,
) -> Status:
    """The files against the database; their checksums come from ``manifest`` when it lists
    exactly them. A read-only command may pass ``tolerate_unreadable_ledger``: without
    privileges on the ledger, checksums are then not compared and the status says why."""
    from migrator.store import current_version  # noqa: PLC0415 (psycopg's: only a session reads a status)

    times = store.applied()
    try:
        entries, unreadable = ledger.entries(), None
    except LedgerUnreadable as exc:
        if not tolerate_unreadable_ledger:
            raise
        entries, unreadable = {}, f"{exc}: edited files and interrupted runs are not detected"
    by_version = {m.version: m for m in migrations}
    newest = max(by_version, default=0)
    recorded = {v for v in times if v in entries and entries[v].state is State.APPLIED}
    on_disk = checksums(migrations, recorded, manifest)
    return Status(
        current=current_version(times),
        migrations=[MigrationState(m, m.version in times, times.get(m.version)) for m in migrations],
        unknown_applied=sorted(v for v in times if v not in by_version),
        edited=[by_version[v] for v in sorted(on_disk) if on_disk[v] != entries[v].sha256],
        vanished=[VanishedFile(v, entries[v].filename) for v in sorted(recorded) if v not in by_version and v < newest],
        interrupted=[from_entry(e) for _, e in sorted(entries.items()) if e.state is not State.APPLIED],
        unrecorded=[by_version[v] for v in sorted(times) if v not in entries and v in by_version]
        if unreadable is None
        else [],
        applied_order=list(times),
        ledger_unreadable=unreadable,
    )
