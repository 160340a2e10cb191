"""What one command-line run was asked to do, after every flag and variable was checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from migrator.options import Options
from migrator.safety import Safety
from migrator.store import TableName

# How long a writing command waits for goose's advisory lock (not PostgreSQL's lock_timeout).
DEFAULT_LOCK_WAIT = "15m"
# A sha256sum listing of the migrations directory, written when the image is built. Its
# files cannot change after that, so a run inside the image need not read every file.
MANIFEST_ENV = "MIGRATOR_CHECKSUMS"
SCRATCH_DSN_ENV = "MIGRATOR_SCRATCH_DSN"


def read_manifest(environ: Mapping[str, str]) -> str | None:
    """The checksum manifest ``MIGRATOR_CHECKSUMS`` names; None when unset or unreadable."""
    location = environ.get(MANIFEST_ENV)
    if not location:
        return None
    try:
        return Path(location).read_text()
    except OSError:
        return None


@dataclass(frozen=True)
class Settings:
    command: str
    argument: str | None
    directory: Path
    table: TableName
    dsn: str
    as_json: bool = False
    lock_wait: float = 15 * 60.0
    safety: Safety = field(default_factory=Safety)
    options: Options = field(default_factory=Options)
    manifest: str | None = None  # the image's checksum manifest, see MANIFEST_ENV
    down: bool = False
    sequential: bool = False
    lint_all: bool = False
    scratch_dsn: str = ""  # the server rehearse and drift may create databases on
    exclude_schemas: tuple[str, ...] = ()  # left out of the drift comparison
    rollback_id: str | None = None  # migrate-to's rollback, which runs once
    run_timeout: float | None = None  # a writing command's budget once it holds the lock; None: none
