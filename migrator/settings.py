"""What one command-line run was asked to do, after every flag and variable was checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from migrator.options import Options
from migrator.safety import Safety
from migrator.store import TableName

# How long a writing command waits for goose's advisory lock (not PostgreSQL's lock_timeout).
DEFAULT_LOCK_WAIT = "15m"


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
    down: bool = False
    sequential: bool = False
    lint_all: bool = False
