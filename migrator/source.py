"""Finding migration files: ``<version>_<name>.sql``, sorted by numeric version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from migrator.errors import InputError

MAX_VERSION = 2**63 - 1
_NAME = re.compile(r"(?P<version>[0-9]+)_(?P<name>.+)\.sql")


@dataclass(frozen=True, order=True)
class Migration:
    version: int
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name


def parse_filename(path: Path) -> int:
    """The version in a migration file name, or InputError saying what is wrong with it."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise InputError(f"{path.name}: not a migration file name: expected <version>_<name>.sql")
    version = int(match["version"])
    if not 0 < version <= MAX_VERSION:
        raise InputError(f"{path.name}: version must be a positive 64-bit integer, got {match['version']}")
    return version


def collect(directory: Path) -> list[Migration]:
    """Every migration in ``directory`` in ascending version order.

    Go migrations cannot run here, so a ``.go`` migration is an error rather than a gap.
    """
    if not directory.is_dir():
        raise InputError(f"{directory}: migrations directory does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix == ".go" and not path.name.endswith("_test.go"):
            raise InputError(f"{path.name}: Go migrations are not supported; write it as SQL")
        if path.suffix != ".sql" or not path.is_file():
            continue
        version = parse_filename(path)
        if version in found:
            raise InputError(f"{path.name}: duplicate version {version}, also used by {found[version].filename}")
        found[version] = Migration(version, path)
    return sorted(found.values())
