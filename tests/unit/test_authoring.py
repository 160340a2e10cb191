"""`create` and `fix` write migration files as goose names them (migrator/authoring.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from migrator import authoring
from migrator.authoring import create, snake_case
from migrator.errors import InputError
from tests.support import MigrationDir, table_file
from tests.support.cli_runner import run_cli

NOW = datetime(2026, 11, 24, 18, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "slug"),
    [("AddUsers", "add_users"), ("  _add-users_ ", "add_users"), ("v2 Backfill", "v2_backfill")],
)
def test_names_become_snake_case(name: str, slug: str) -> None:
    assert snake_case(name) == slug


def test_the_first_sequential_file_is_00001_whatever_timestamps_exist(migrations: MigrationDir) -> None:
    assert create(migrations.path, "first", now=NOW, sequential=True).name == "00001_first.sql"
    migrations.add("20260101000000_stamped.sql", table_file("s"))
    assert create(migrations.path, "second", now=NOW, sequential=True).name == "00002_second.sql"


def test_a_name_without_letters_or_a_missing_directory_is_refused(migrations: MigrationDir, tmp_path: Path) -> None:
    with pytest.raises(InputError) as refused:
        create(migrations.path, "!!!", now=NOW, sequential=True)
    assert str(refused.value) == "create: migration name '!!!' has no letters or digits"
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError) as refused:
        create(missing, "x", now=NOW, sequential=False)
    assert str(refused.value) == f"{missing}: migrations directory does not exist"
    assert list(migrations.path.iterdir()) == []


def test_the_command_line_stamps_utc_whatever_the_time_zone(migrations: MigrationDir) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    result = run_cli("create", "add_x", directory=migrations.path, env={"TZ": "Asia/Kolkata"})
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    [created] = list(migrations.path.iterdir())
    assert result.stdout.strip() == f"migrator: created new file: {created}"
    match = re.fullmatch(r"(\d{14})_add_x\.sql", created.name)
    assert match, created.name
    stamped = datetime.strptime(match[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert before <= stamped <= after + timedelta(seconds=1)


def test_an_empty_name_on_the_command_line_is_refused(migrations: MigrationDir) -> None:
    result = run_cli("create", "", directory=migrations.path)
    assert result.returncode == 2
    assert result.stderr.strip() == "migrator: error: create: migration name '' has no letters or digits"
    assert list(migrations.path.iterdir()) == []


def test_the_longest_file_name_is_255_bytes(migrations: MigrationDir) -> None:
    longest = "x" * (255 - len("00001_.sql"))
    assert len(create(migrations.path, longest, now=NOW, sequential=True).name.encode()) == 255
    with pytest.raises(InputError) as refused:
        create(migrations.path, longest + "y", now=NOW, sequential=True)
    assert str(refused.value) == "create: the file name would be 256 bytes; keep it under 255"


def test_a_file_created_meanwhile_or_an_unwritable_directory_is_an_error(
    migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as race:
        race.setattr(authoring, "collect", lambda directory: [])  # another create won the race
        migrations.add("00001_x.sql", table_file("x"))
        with pytest.raises(InputError) as refused:
            create(migrations.path, "x", now=NOW, sequential=True)
        assert str(refused.value) == "00001_x.sql: already exists"
    with pytest.raises(InputError) as refused:
        create(Path("/proc/self"), "x", now=NOW, sequential=True)  # no file can be made there
    assert str(refused.value).startswith("00001_x.sql: cannot be created: ")
