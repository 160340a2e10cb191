"""Commands that write migration files: ``create`` and ``fix``, as goose does them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from migrator.errors import InputError
from migrator.source import Migration, collect, missing_directory

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
SEQUENTIAL_WIDTH = 5

# Comments only: a template applied by mistake changes no schema (goose's own runs a SELECT).
TEMPLATE = """\
-- +goose Up
-- The SQL that moves the schema forward, each statement ending with ';'.
-- A statement with ';' inside it (a function body, a DO block) goes between
-- StatementBegin and StatementEnd annotation lines.

-- +goose Down
-- The SQL that undoes the Up section, in reverse order.
"""
# A file name longer than this is refused by most file systems.
MAX_FILENAME_BYTES = 255


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
    taken = {m.version for m in collect(directory)}
    if sequential:
        version = f"{max((v for v in taken if not is_timestamp(v)), default=0) + 1:0{SEQUENTIAL_WIDTH}d}"
    else:
        # Two creates within one second would share a version: take the next free second.
        while int(now.strftime(TIMESTAMP_FORMAT)) in taken:
            now += timedelta(seconds=1)
        version = now.strftime(TIMESTAMP_FORMAT)
    path = directory / f"{version}_{slug}.sql"
    if len(path.name.encode()) > MAX_FILENAME_BYTES:
        raise InputError(f"create: the file name would be {len(path.name.encode())} bytes; keep it under 255")
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(TEMPLATE)
    except FileExistsError:
        raise InputError(f"{path.name}: already exists") from None
    except OSError as exc:
        raise InputError(f"{path.name}: cannot be created: {exc.strerror}") from None
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
    # No target can exist: it would be a migration numbered after every sequential one, and
    # collect() refuses any other entry named like a migration before anything is renamed.
    for old, new in renames:
        old.rename(new)
    return renames
