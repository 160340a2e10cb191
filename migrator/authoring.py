"""Commands that write migration files: ``create`` and ``fix``, as goose does them."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from migrator.errors import InputError
from migrator.source import Migration, collect, missing_directory

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
SEQUENTIAL_WIDTH = 5

TEMPLATE = """\
-- +goose Up
-- +goose StatementBegin
SELECT 'up SQL query';
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
SELECT 'down SQL query';
-- +goose StatementEnd
"""


def is_timestamp(version: int) -> bool:
    try:
        datetime.strptime(str(version), TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def snake_case(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


def create(directory: Path, name: str, *, now: datetime, sequential: bool) -> Path:
    slug = snake_case(name)
    if not slug:
        raise InputError(f"create: migration name {name!r} has no letters or digits")
    if not directory.is_dir():
        raise missing_directory(directory)
    if sequential:
        existing = [m.version for m in collect(directory) if not is_timestamp(m.version)]
        version = f"{max(existing, default=0) + 1:0{SEQUENTIAL_WIDTH}d}"
    else:
        version = now.strftime(TIMESTAMP_FORMAT)
    path = directory / f"{version}_{slug}.sql"
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(TEMPLATE)
    except FileExistsError:
        raise InputError(f"{path.name}: already exists") from None
    return path


def fix(directory: Path) -> list[tuple[Path, Path]]:
    """Renumber timestamped migrations sequentially after the last sequential one."""
    migrations = collect(directory)
    stamped: list[Migration] = [m for m in migrations if is_timestamp(m.version)]
    next_version = max((m.version for m in migrations if not is_timestamp(m.version)), default=0) + 1
    renames: list[tuple[Path, Path]] = []
    for offset, migration in enumerate(stamped):
        new_name = migration.filename.replace(
            str(migration.version), f"{next_version + offset:0{SEQUENTIAL_WIDTH}d}", 1
        )
        renames.append((migration.path, migration.path.with_name(new_name)))
    for old, new in renames:
        old.rename(new)
    return renames
