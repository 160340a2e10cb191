"""What the migrator's ledger records (ledger.py), and the checksums it compares, without a
database session: the commands that never connect (``validate`` without a database, ``--help``)
and the messages about the ledger's entries import this, and no psycopg."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from migrator.errors import DatabaseError
from migrator.source import Migration


class State(StrEnum):
    APPLIED = "applied"
    APPLYING = "applying"  # a NO TRANSACTION file is running, or died running
    REVERTING = "reverting"


class LedgerUnreadable(DatabaseError):
    """The role may read goose's table but not the ledger: checksums cannot be compared."""


@dataclass(frozen=True)
class Entry:
    """A ledger row: an applied file's name and checksum, and how far a NO TRANSACTION run of it got."""

    version: int
    filename: str
    sha256: str
    state: State
    statements_done: int
    statements_total: int


# Ledger row 0, like goose's row 0, stands for the whole: a digest of the state the last
# complete run verified, so a no-op run can prove itself without reading every file.
SEAL_VERSION = 0
SEAL_NAME = "(verified state)"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_names(text: str) -> list[str]:
    """File names of a sha256sum listing: each line is 64 hex digits, a space, a mode flag."""
    return [line[66:] for line in text.splitlines()]


def _manifest(migrations: list[Migration], text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    listed = {name: line[:64] for line, name in zip(text.splitlines(), manifest_names(text), strict=True)}
    # Only a manifest of exactly these files counts; anything else means it is stale.
    return listed if listed.keys() == {m.filename for m in migrations} else None


def checksums(migrations: list[Migration], versions: set[int], manifest: str | None) -> dict[int, str]:
    """SHA-256 of the files of ``versions``, from ``manifest`` (a sha256sum listing, as the
    image carries) when it lists exactly ``migrations``, else read from the files."""
    wanted = [m for m in migrations if m.version in versions]
    listed = _manifest(migrations, manifest) if wanted else None
    if listed is not None:
        return {m.version: listed[m.filename] for m in wanted}
    return {m.version: file_sha256(m.path) for m in wanted}
