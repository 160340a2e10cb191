"""Which files in the migrations directory are migrations, and their versions (migrator/source.py).

goose takes what comes before the first ``_`` of a ``.sql`` file as a positive 64-bit version;
the migrator is stricter: ASCII digits only (goose's ParseInt also reads ``+1``), and a name
between the ``_`` and ``.sql``.
"""

from __future__ import annotations

import pytest

from migrator.errors import InputError
from migrator.source import collect, parse_filename
from tests.support import MigrationDir

GOOD = "-- +goose Up\nSELECT 1;\n"


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("1_a.sql", 1),
        ("00042_add_users_table.sql", 42),
        ("20260101000000_stamped.sql", 20260101000000),
        (f"{2**63 - 1}_largest.sql", 2**63 - 1),
    ],
)
def test_the_digits_before_the_first_underscore_are_the_version(name: str, version: int) -> None:
    assert parse_filename(name) == version


@pytest.mark.parametrize("name", ["1_.sql", "1.sql", "a_1.sql", "_1.sql", "\uff11_fullwidth.sql", "+1_a.sql", "1_a.sq"])
def test_a_name_without_version_underscore_and_name_is_refused(name: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_filename(name)
    assert str(refused.value) == f"{name}: not a migration file name: expected <version>_<name>.sql"


@pytest.mark.parametrize("digits", ["0", "000", str(2**63)])
def test_a_version_outside_1_to_2_63_minus_1_is_refused(digits: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_filename(f"{digits}_x.sql")
    assert str(refused.value) == f"{digits}_x.sql: version must be a positive 64-bit integer, got {digits}"


def test_only_sql_files_are_collected_in_version_order(migrations: MigrationDir) -> None:
    for name in ("10_c.sql", "2_b.sql", "00001_a.sql", "README.md", "3_upper.SQL", "helpers_test.go", "4_d.sql.bak"):
        migrations.add(name, GOOD)
    found = collect(migrations.path)
    assert [(m.version, m.filename) for m in found] == [(1, "00001_a.sql"), (2, "2_b.sql"), (10, "10_c.sql")]
    assert {m.path.parent for m in found} == {migrations.path}


def test_a_go_migration_is_collected_and_any_other_go_file_left_alone(migrations: MigrationDir) -> None:
    """Which .go files are migrations: tests/goose/test_go_migrations.py, against goose."""
    migrations.add("00001_a.sql", GOOD)
    migrations.add("00002_seed.go", "package migrations\n")
    migrations.add("embed.go", "package migrations\n")
    assert [(m.version, m.filename, m.go) for m in collect(migrations.path)] == [
        (1, "00001_a.sql", False),
        (2, "00002_seed.go", True),
    ]


def test_two_files_of_one_version_are_named_in_order(migrations: MigrationDir) -> None:
    migrations.add("1_again.sql", GOOD)
    migrations.add("00001_a.sql", GOOD)
    with pytest.raises(InputError) as refused:
        collect(migrations.path)
    assert str(refused.value) == "1_again.sql: duplicate version 1, also used by 00001_a.sql"
