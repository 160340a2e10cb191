"""`create` and `fix` write migration files as goose names them (migrator/authoring.py): every test
of the two commands, through the library and the command line (one runs the migrator in a process
of its own, for its time zone)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from migrator import authoring
from migrator.authoring import create, snake_case
from migrator.errors import InputError
from tests.support import MigrationDir, table_file
from tests.support.cli_runner import help_of, one_error, run_cli
from tests.support.migrator_process import run_migrator

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


def test_create_accepts_gooses_type_word_and_keeps_the_name(migrations: MigrationDir) -> None:
    result = run_cli("create", "add_users", "sql", directory=migrations.path)
    assert result.returncode == 0, result.stderr
    [created] = migrations.path.glob("*.sql")
    assert created.name.endswith("_add_users.sql")
    assert "Go migrations" not in result.stderr
    refused = run_cli("create", "add_users", "go", directory=migrations.path)
    assert refused.returncode == 2


def test_two_creates_in_one_second_get_two_versions(migrations: MigrationDir) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = authoring.create(migrations.path, "first", now=now, sequential=False)
    second = authoring.create(migrations.path, "second", now=now, sequential=False)
    assert first.name == "20260102030405_first.sql"
    assert second.name == "20260102030406_second.sql"
    assert run_cli("validate", directory=migrations.path).returncode == 0


def test_create_names_the_version_in_utc_whatever_the_local_time_zone(migrations: MigrationDir) -> None:
    """goose's timestamps are UTC: two developers in two time zones must not get versions
    hours apart, out of the order they wrote them in. (A process, for its own TZ.)"""
    before = datetime.now(UTC).replace(microsecond=0)
    result = run_migrator("create", "in_utc", directory=migrations.path, env={"TZ": "LOCAL-14"})
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr
    [created] = migrations.path.glob("*.sql")
    stamp = datetime.strptime(created.name.split("_")[0], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert before <= stamp <= after, f"{created.name} made between {before} and {after} (UTC)"


def test_create_template_applies_no_sql(migrations: MigrationDir) -> None:
    assert run_cli("create", "nothing_yet", directory=migrations.path).returncode == 0
    [created] = migrations.path.glob("*.sql")
    shown = json.loads(run_cli("show", created.name, "--json", directory=migrations.path).stdout)
    assert shown["statements"] == []


def test_create_with_an_overlong_name_is_refused(migrations: MigrationDir) -> None:
    error = one_error(run_cli("create", "x" * 300, directory=migrations.path))
    assert "under 255" in error
    assert list(migrations.path.iterdir()) == []


def test_create_documents_its_name_and_gooses_type_word(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of("create", capsys=capsys)
    assert "usage: python -m migrator create [-h] [-s] [--dir DIR] [--table TABLE] [--dsn DSN] NAME [sql]" in text
    assert "positional arguments: NAME what the migration does, e.g. add_users sql goose's type word; only sql" in text


@pytest.mark.parametrize(
    ("names", "fixed"),
    [
        (
            ["00001_first.sql", "20260101000000_second.sql", "20260102000000_third.sql"],
            ["00001_first.sql", "00002_second.sql", "00003_third.sql"],
        ),
        # Without sequential files numbering starts at 1; only the version prefix is renamed.
        (
            ["20260101000000_copy_of_20260101000000.sql", "20260102000000_b.sql"],
            ["00001_copy_of_20260101000000.sql", "00002_b.sql"],
        ),
    ],
)
def test_fix_gives_every_file_its_own_number(migrations: MigrationDir, names: list[str], fixed: list[str]) -> None:
    for name in names:
        migrations.add(name, table_file(name.split("_")[1]))
    assert run_cli("fix", directory=migrations.path).returncode == 0
    assert sorted(p.name for p in migrations.path.iterdir()) == fixed


def test_fix_renames_nothing_when_a_target_name_is_taken(migrations: MigrationDir) -> None:
    migrations.add("20260101000000_a.sql", table_file("good"))
    (migrations.path / "00001_a.sql").mkdir()
    error = one_error(run_cli("fix", directory=migrations.path))
    assert error.strip() == "migrator: error: 00001_a.sql: a directory, not a migration file"
    assert (migrations.path / "20260101000000_a.sql").exists()
