"""The real goose and the migrator on the same database: each sees what the other did,
picks up where the other stopped, leaves the same schema, rolls back in the same order,
and excludes the other through goose's advisory lock.

goose's CLI and our goose-library driver are built by ``bash .ci/tools`` (see
tests/support/goose_interop.py); ``pytest -rP`` shows the side-by-side failure output.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from migrator.lock import GOOSE_LOCK_ID
from tests.support import REPO, MigrationDir, query, versions
from tests.support.goose_interop import (
    CORPUS,
    CORPUS_ENV,
    CORPUS_VERSIONS,
    Tools,
    ok,
    pinned_goose_version,
    schema,
    tool,
    write_corpus,
)


@pytest.fixture
def corpus(migrations: MigrationDir) -> Path:
    write_corpus(migrations.path)
    return migrations.path


@pytest.fixture
def tools(dsn: str, corpus: Path) -> Tools:
    return Tools(dsn, corpus, dict(CORPUS_ENV))


def goose_only_schema(other_dsn: str, corpus: Path) -> str:
    reference = Tools(other_dsn, corpus, dict(CORPUS_ENV))
    ok(reference.goose("up"))
    return schema(other_dsn)


def test_the_goose_built_is_the_pinned_version() -> None:
    result = ok(subprocess.run([str(tool("goose")), "-version"], capture_output=True, text=True, check=False))
    assert result.stdout.split() == ["goose", "version:", pinned_goose_version()]
    driver = (REPO / "tests" / "support" / "goose_driver" / "go.mod").read_text()
    assert f"github.com/pressly/goose/v3 {pinned_goose_version()}\n" in driver


def test_goose_applies_everything_then_the_migrator_agrees_and_works(tools: Tools) -> None:
    ok(tools.goose("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    goose_schema = schema(tools.dsn)
    assert json.loads(ok(tools.migrator("plan", "--json")).stdout) == {"pending": []}

    ok(tools.migrator("down"))  # the NO TRANSACTION file, newest
    assert tools.assert_agree() == CORPUS_VERSIONS[:-1]
    row_of_newest = "SELECT id FROM _migrations WHERE version_id = %s"
    before = query(tools.dsn, row_of_newest, (CORPUS_VERSIONS[-2],))
    ok(tools.migrator("redo"))  # the view: Down in StatementBegin/End, then Up again
    assert tools.assert_agree() == CORPUS_VERSIONS[:-1]
    assert query(tools.dsn, row_of_newest, (CORPUS_VERSIONS[-2],)) > before, "redo recorded the version anew"
    ok(tools.migrator("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    assert schema(tools.dsn) == goose_schema
    # goose reads what the migrator wrote and has nothing left to do.
    assert "no migrations to run" in ok(tools.goose("up")).stderr


def test_the_migrator_applies_everything_then_goose_agrees_and_works(tools: Tools, other_dsn: str) -> None:
    ok(tools.migrator("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    assert tools.library_status() == {v: True for v in CORPUS_VERSIONS}

    ok(tools.goose("down"))
    ok(tools.goose("down"))
    assert tools.assert_agree() == CORPUS_VERSIONS[:-2]
    ok(tools.goose("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    assert "no migrations to run" in ok(tools.migrator("up")).stdout
    assert schema(tools.dsn) == goose_only_schema(other_dsn, tools.directory)


def test_mixed_runs_agree_at_every_step_and_build_goose_s_schema(tools: Tools, other_dsn: str) -> None:
    half = CORPUS_VERSIONS[len(CORPUS_VERSIONS) // 2 - 1]
    ok(tools.goose(f"up-to {half}"))
    assert tools.assert_agree() == [v for v in CORPUS_VERSIONS if v <= half]
    ok(tools.migrator("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    ok(tools.goose("down"))
    assert tools.assert_agree() == CORPUS_VERSIONS[:-1]
    ok(tools.goose("down"))
    assert tools.assert_agree() == CORPUS_VERSIONS[:-2]
    ok(tools.migrator("up"))
    assert tools.assert_agree() == CORPUS_VERSIONS
    assert schema(tools.dsn) == goose_only_schema(other_dsn, tools.directory)


def _ordered(dsn: str) -> list[int]:
    """Applied versions in the order they were applied (goose's id order)."""
    return [v for v in versions(dsn) if v != 0]


def test_out_of_order_files_apply_and_roll_back_in_goose_s_order(
    migrations: MigrationDir, dsn: str, other_dsn: str
) -> None:
    """The same steps, one database driven by goose, the other by the migrator. goose's
    ``down`` rolls back the most recently applied version (highest id), not the highest."""
    names = sorted(n for n in CORPUS if n != "00005_seed.sql")  # seed data expects all accounts files
    first, late = [names[0], names[3], names[4]], [names[1], names[2]]
    write_corpus(migrations.path, first)
    goose, ours = Tools(other_dsn, migrations.path, dict(CORPUS_ENV)), Tools(dsn, migrations.path, dict(CORPUS_ENV))
    ok(goose.goose("up"))
    ok(ours.migrator("up"))
    write_corpus(migrations.path, late)

    # Without allow-missing, both refuse and change nothing.
    refused_goose, refused_ours = goose.goose("up"), ours.migrator("up")
    assert refused_goose.returncode != 0
    assert "missing" in refused_goose.stderr
    assert refused_ours.returncode == 2
    assert "--allow-missing" in refused_ours.stderr
    assert _ordered(other_dsn) == _ordered(dsn) == sorted(int(n.partition("_")[0]) for n in first)

    ok(goose.goose("up", "-allow-missing"))
    ok(ours.migrator("up", "--allow-missing"))
    assert _ordered(dsn) == _ordered(other_dsn)
    assert ours.migrator_status() == goose.goose_status()

    for _ in range(len(first) + len(late)):
        ok(goose.goose("down"))
        ok(ours.migrator("down"))
        assert _ordered(dsn) == _ordered(other_dsn), "the migrator rolled back another version than goose"
    assert schema(dsn) == schema(other_dsn)


def _new_files(migrations: MigrationDir, round_number: int, count: int) -> list[int]:
    made = []
    for index in range(count):
        version = round_number * 100 + index
        migrations.add(
            f"{version:05d}_r{version}.sql",
            f"-- +goose Up\nCREATE TABLE r{version} (id int);\nSELECT pg_sleep(0.05);\n"
            f"-- +goose Down\nDROP TABLE r{version};\n",
        )
        made.append(version)
    return made


def test_goose_library_and_migrator_started_together_apply_each_version_once(
    migrations: MigrationDir, dsn: str
) -> None:
    tools = Tools(dsn, migrations.path)
    for round_number in range(1, 4):
        new = _new_files(migrations, round_number, 5)
        goose = tools.spawn_library("up")
        migrator = tools.migrator("up")
        goose_out, _ = goose.communicate(timeout=120)
        assert goose.returncode == 0
        assert migrator.returncode == 0, migrator.stderr
        by_goose = [r["version"] for r in json.loads(goose_out)]
        by_migrator = [
            int(line.split()[1].partition("_")[0]) for line in migrator.stdout.splitlines() if line[:2] == "OK"
        ]
        assert sorted(by_goose + by_migrator) == new, "each new version applied by exactly one of them"
        rows = query(dsn, "SELECT count(*), count(DISTINCT version_id) FROM _migrations")
        assert rows[0][0] == rows[0][1], "a version recorded twice"
        assert tools.library_status() == tools.migrator_status()
        assert all(tools.library_status().values())


def _wait_for_lock_holder(dsn: str) -> int:
    """The backend pid holding goose's lock, once someone holds it."""
    for _ in range(600):
        rows = query(
            dsn,
            # Advisory locks belong to one database; pg_locks shows every database's.
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (GOOSE_LOCK_ID,),
        )
        if rows:
            return int(str(rows[0][0]))
        time.sleep(0.05)
    raise AssertionError("nobody took goose's lock")


def _slow_file(migrations: MigrationDir, version: int, seconds: float) -> None:
    """A file that keeps its runner holding the lock for ``seconds``: several times what the
    other side needs to start, try and give up, so the order of events is certain."""
    migrations.add(
        f"{version:05d}_slow.sql",
        f"-- +goose Up\nCREATE TABLE slow{version} (id int);\nSELECT pg_sleep({seconds});\n"
        f"-- +goose Down\nDROP TABLE slow{version};\n",
    )


def test_goose_library_holding_the_lock_makes_the_migrator_time_out_with_exit_3(
    migrations: MigrationDir, dsn: str
) -> None:
    _slow_file(migrations, 1, 6)
    tools = Tools(dsn, migrations.path)
    goose = tools.spawn_library("up")
    holder = _wait_for_lock_holder(dsn)
    waited = tools.migrator("up", "--lock-timeout", "1s")
    assert waited.returncode == 3, waited.stderr
    assert "not acquired within 1s" in waited.stderr
    assert f"backend pid {holder}" in waited.stderr
    goose_out, _ = goose.communicate(timeout=120)
    assert goose.returncode == 0
    assert [r["version"] for r in json.loads(goose_out)] == [1]
    assert _ordered(dsn) == [1]  # by goose alone, once
    assert "no migrations to run" in ok(tools.migrator("up")).stdout


def test_migrator_holding_the_lock_makes_the_goose_library_wait(migrations: MigrationDir, dsn: str) -> None:
    _slow_file(migrations, 1, 5)
    tools = Tools(dsn, migrations.path)
    with tools.started_migrator("up") as migrator:
        holder = _wait_for_lock_holder(dsn)
        goose = tools.spawn_library("up")
        # The migrator is still inside its file, holding the lock; goose is still polling for it.
        time.sleep(1.5)
        still = _wait_for_lock_holder(dsn)
        if goose.poll() is not None or still != holder:
            migrator.kill()
            goose.kill()
            raise AssertionError(
                f"the lock moved from {holder} to {still} while the migrator's file ran:"
                f" migrator {migrator.communicate()}, goose {goose.communicate()}"
            )
        migrator_out, migrator_err = migrator.communicate(timeout=120)
    assert migrator.returncode == 0, migrator_err
    goose_out, _ = goose.communicate(timeout=120)
    assert goose.returncode == 0
    assert json.loads(goose_out) == [], "goose found the version applied once it had the lock"
    assert _ordered(dsn) == [1]
    assert "OK" in migrator_out


def test_goose_library_gives_up_on_a_lock_the_migrator_holds(migrations: MigrationDir, dsn: str) -> None:
    _slow_file(migrations, 1, 6)
    tools = Tools(dsn, migrations.path)
    with tools.started_migrator("up") as migrator:
        _wait_for_lock_holder(dsn)
        gave_up = tools.run(tools.library_command("-lock-poll", "1", "-lock-attempts", "1", "up"))
        migrator.communicate(timeout=120)
    assert gave_up.returncode == 1
    assert "failed to acquire lock" in gave_up.stderr
    assert migrator.returncode == 0
    assert _ordered(dsn) == [1]


FAILING = {
    "in a transaction": "-- +goose Up\nCREATE TABLE doomed (id int);\nINSERT INTO doomed VALUES (1 / 0);\n",
    "NO TRANSACTION": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE doomed (id int);\n"
    "INSERT INTO doomed VALUES (1 / 0);\nCREATE TABLE never (id int);\n",
}


@pytest.mark.parametrize("mode", sorted(FAILING))
def test_a_failing_migration_reads_alike_and_leaves_the_same_database(
    mode: str, migrations: MigrationDir, dsn: str, other_dsn: str
) -> None:
    write_corpus(migrations.path, ["00001_create_accounts.sql"])
    failing = migrations.add("00002_doomed.sql", FAILING[mode] + "-- +goose Down\nDROP TABLE doomed;\n")
    goose, ours = Tools(other_dsn, migrations.path), Tools(dsn, migrations.path)
    by_goose, by_migrator = goose.goose("up"), ours.migrator("up")
    print(f"\n--- failing migration ({mode}): goose {pinned_goose_version()} (exit {by_goose.returncode})")
    print(by_goose.stdout + by_goose.stderr)
    print(f"--- the migrator (exit {by_migrator.returncode})")
    print(by_migrator.stdout + by_migrator.stderr)
    assert by_goose.returncode == by_migrator.returncode == 1
    for output in (by_goose.stderr, by_migrator.stderr):
        assert failing.name in output
        assert "division by zero (SQLSTATE 22012)" in output
    assert "statement 2 (line " in by_migrator.stderr  # which statement, which line: beyond goose
    assert _ordered(dsn) == _ordered(other_dsn) == [1]
    assert schema(dsn) == schema(other_dsn)
    assert ours.assert_agree() == [1]
