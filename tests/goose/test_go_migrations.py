"""Go files beside the SQL migrations, as goose's CLI sees them: those whose name starts with a
version are Go migrations (only a Go program that registers them can run them), the rest
(``embed.go``, ``*_test.go``) are not migrations at all. Every command works on such a
directory; only one that would have to run a Go migration is refused, before anything
runs, naming the lowest such version."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from migrator import Migrator, TableName
from migrator.planning import GoMigrationRefused
from migrator.source import Migration, collect, go_version
from tests.support import MigrationDir, query, tables, versions
from tests.support.cli_runner import run_cli
from tests.support.goose_interop import Tools, ok, schema


def sql_file(table: str, column: str = "id int") -> str:
    return f"-- +goose Up\nCREATE TABLE {table} ({column});\n-- +goose Down\nDROP TABLE {table};\n"


GO = "package migrations\n"


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("00002_seed.go", 2),
        ("+4_signed.go", 4),  # Go's ParseInt takes a sign
        ("20240101000000_backfill.go", 20240101000000),
        ("embed.go", None),
        ("helpers.go", None),
        ("00003_seed_test.go", None),
        ("0_zero.go", None),
        ("-1_negative.go", None),
        (f"{2**63}_too_big.go", None),
        ("1e3_float.go", None),
        ("x_5.go", None),
        ("\uff11_fullwidth.go", None),
    ],
)
def test_a_go_file_is_a_migration_when_goose_reads_a_version_from_its_name(name: str, version: int | None) -> None:
    assert go_version(name) == version


def test_goose_lists_the_same_migrations(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", sql_file("a"))
    for name in ("00002_seed.go", "+4_signed.go", "embed.go", "00003_seed_test.go", "0_zero.go", "helpers.go"):
        migrations.add(name, GO)
    migrations.add("00005_b.sql", sql_file("b"))
    found = [(m.version, m.filename, m.go) for m in collect(migrations.path)]
    assert found == [
        (1, "00001_a.sql", False),
        (2, "00002_seed.go", True),
        (4, "+4_signed.go", True),
        (5, "00005_b.sql", False),
    ]
    goose = Tools(dsn, migrations.path).goose_status()
    assert goose == {1: False, 2: False, 4: False, 5: False}


def test_a_go_file_and_a_sql_file_of_one_version_are_a_duplicate(migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", sql_file("a"))
    migrations.add("1_a.go", GO)
    result = run_cli("validate", directory=migrations.path)
    assert result.returncode == 2
    assert result.stderr == "migrator: error: 1_a.go: duplicate version 1, also used by 00001_a.sql\n"


def test_embed_go_beside_the_sql_files_changes_nothing(dsn: str, migrations: MigrationDir) -> None:
    """The usual way to ship migrations with goose's library: an embed.go with //go:embed *.sql."""
    migrations.add("embed.go", 'package migrations\n\nimport "embed"\n\n//go:embed *.sql\nvar FS embed.FS\n')
    migrations.add("00001_a.sql", sql_file("a", "id bigint"))  # nothing for lint to find
    migrations.add("00002_b.sql", sql_file("b", "id bigint"))
    assert run_cli("validate", directory=migrations.path).stdout == "migrator: 2 migration(s) valid\n"
    for command in (["status"], ["plan"], ["lint"], ["up"], ["down"], ["redo"], ["status", "--json"]):
        result = run_cli(*command, dsn=dsn, directory=migrations.path)
        assert result.returncode == 0, (command, result.stderr)
    assert versions(dsn) == [0, 1]  # up applied 1 and 2, down took 2 back, redo took 1 back and applied it again
    assert tables(dsn) & {"a", "b"} == {"a"}


GO_REFUSED = (
    "00003_backfill.go: version 3 is a Go migration, and this command would have to apply it; only the Go program"
    " that registers it (with goose's library) can run it, the migrator runs SQL. Nothing was changed."
)


@pytest.fixture
def with_go(migrations: MigrationDir) -> Path:
    migrations.add("00001_a.sql", sql_file("a"))
    migrations.add("00002_b.sql", sql_file("b"))
    migrations.add("00003_backfill.go", GO)
    migrations.add("00004_c.sql", sql_file("c"))
    migrations.add("00005_seed.go", GO)
    return migrations.path


def test_status_and_validate_work_and_list_the_go_migrations(dsn: str, with_go: Path) -> None:
    status = json.loads(ok(Tools(dsn, with_go).migrator("status", "--json")).stdout)
    assert [(m["version"], m["name"]) for m in status["migrations"]] == [
        (1, "00001_a.sql"),
        (2, "00002_b.sql"),
        (3, "00003_backfill.go"),
        (4, "00004_c.sql"),
        (5, "00005_seed.go"),
    ]
    assert status["pending"] == [1, 2, 3, 4, 5]
    validated = run_cli("validate", directory=with_go)
    assert (validated.returncode, validated.stdout) == (
        0,
        "migrator: 3 migration(s) valid (2 Go migration(s) not read: the migrator runs SQL)\n",
    )


def test_up_is_refused_before_anything_runs_where_goose_stops_part_way(dsn: str, other_dsn: str, with_go: Path) -> None:
    ours, goose = Tools(dsn, with_go), Tools(other_dsn, with_go)
    for command in ("up", "plan"):
        refused = ours.migrator(command)
        assert refused.returncode == 2
        assert refused.stderr == (
            f"migrator: error: {GO_REFUSED} Apply it with that program, or the SQL migrations before it with"
            " `up-to 2`\n"
        )
    assert tables(dsn) == set()
    by_goose = goose.goose("up")
    assert by_goose.returncode == 1
    assert "00003_backfill.go: failed to run Go migration" in by_goose.stderr
    assert versions(other_dsn) == [0, 1, 2]
    # Below the first Go migration both apply alike; then the next is refused without advice.
    ok(ours.migrator("up-to", "2"))
    assert schema(dsn) == schema(other_dsn)
    assert ours.assert_agree() == [1, 2]
    refused = ours.migrator("up-by-one")
    assert refused.stderr == f"migrator: error: {GO_REFUSED} Apply it with that program\n"


def test_lint_reads_the_pending_sql_files_only(dsn: str, with_go: Path) -> None:
    linted = run_cli("lint", dsn=dsn, directory=with_go)
    files = {line.split(":")[0] for line in linted.stdout.splitlines() if line.startswith("0000")}
    assert files == {"00001_a.sql", "00002_b.sql", "00004_c.sql"}
    every = run_cli("lint", "--all", directory=with_go)
    assert {line.split(":")[0] for line in every.stdout.splitlines() if line.startswith("0000")} == files


def test_down_is_refused_only_where_it_would_roll_back_a_go_migration(dsn: str, other_dsn: str, with_go: Path) -> None:
    """As if a Go program had applied versions 3 and 5: goose fails on them, the migrator refuses."""
    for target in (dsn, other_dsn):
        ok(Tools(target, with_go).goose("up-to 2"))
        query(target, "INSERT INTO _migrations (version_id, is_applied) VALUES (3, true)")
        ok(Tools(target, with_go).goose("up-to 4", "-allow-missing"))
        query(target, "INSERT INTO _migrations (version_id, is_applied) VALUES (5, true)")
    ours, goose = Tools(dsn, with_go), Tools(other_dsn, with_go)
    rolled_back_go = (
        "00005_seed.go: version 5 is a Go migration, and this command would have to roll it back; only the Go"
        " program that registers it (with goose's library) can run it, the migrator runs SQL. Nothing was changed."
        " Roll it back with that program"
    )
    for command in ("down", "redo"):
        assert ours.migrator(command).stderr == f"migrator: error: {rolled_back_go}\n"
    assert goose.goose("down").returncode == 1
    assert versions(dsn) == versions(other_dsn) == [0, 1, 2, 3, 4, 5]
    # With the Go program's version gone, down rolls back the SQL file; reset meets the lowest Go one.
    for target in (dsn, other_dsn):
        query(target, "DELETE FROM _migrations WHERE version_id = 5")
    ok(ours.migrator("down"))
    ok(goose.goose("down"))
    assert schema(dsn) == schema(other_dsn)
    refused = ours.migrator("reset")
    assert refused.stderr == (
        "migrator: error: 00003_backfill.go: version 3 is a Go migration, and this command would have to roll it"
        " back; only the Go program that registers it (with goose's library) can run it, the migrator runs SQL."
        " Nothing was changed. Roll it back with that program\n"
    )
    assert versions(dsn) == [0, 1, 2, 3]
    ok(ours.migrator("down-to", "3"))  # nothing above 3 is applied: nothing to roll back, nothing refused


def test_show_refuses_a_go_file(with_go: Path) -> None:
    shown = run_cli("show", "00003_backfill.go", directory=with_go)
    assert (shown.returncode, shown.stderr) == (
        2,
        "migrator: error: 00003_backfill.go: a Go file; show reads SQL migrations\n",
    )


def test_the_library_refusal_carries_the_go_migration(dsn: str, with_go: Path) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(GoMigrationRefused) as refused:
        Migrator(conn, with_go, TableName.parse("_migrations")).plan_up(target=4)
    assert refused.value.migration == Migration(3, "00003_backfill.go", with_go)
    assert tables(dsn) == set()
