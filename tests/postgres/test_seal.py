"""The sealed no-op (migrator/seal.py), every test whose subject it is: from a checkout, a stat
listing stands for the files once they settled, and an edit, even in place with the same size
and mtime, still ends the shortcut; from the image, its checksum manifest stands for them; a
sealed ``up`` writes nothing; any write to goose's table or the ledger, an incomplete run, an
interrupted rollback and an ``up`` allowed past an edit leave no seal that holds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from migrator import ledger_entries
from migrator.api import Migrator
from migrator.dsn import connect
from migrator.ledger_entries import file_sha256
from migrator.seal import SETTLED_NS, stat_listing
from migrator.table_name import TableName
from tests.support import MigrationDir, query, table_file, tables, versions
from tests.support.cli_runner import rolled_back, run_cli, write_manifest

EDITED = (
    "migrator: error: 00001_a.sql was edited after it was applied. Restore the applied file(s); or pass"
    " --allow-edited to go on this once (the edit is reported again next time), or --accept-edited to record the"
    " edited file's checksum as the applied one\n"
)
SEAL_ROW = "SELECT xmin::text, sha256 FROM _migrations_ledger WHERE version_id = 0"
LATER = 10 * SETTLED_NS  # a listing taken this long after the files were written


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Overwrite ``old`` with ``new`` (same length) without truncating, and set the mtime back."""
    before = path.stat()
    text = path.read_bytes()
    assert len(old) == len(new)
    assert text.count(old) == 1
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, new, text.index(old))
    finally:
        os.close(descriptor)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def manifest_for(migrations: MigrationDir, names: list[str]) -> dict[str, str]:
    """A sha256sum listing of ``names``, as the image build writes it, and the env naming it."""
    listing = subprocess.run(
        ["sha256sum", "--", *names], cwd=migrations.path, capture_output=True, text=True, check=True
    ).stdout
    path = migrations.path.parent / "migrations.sha256"
    path.write_text(listing)
    return {"MIGRATOR_CHECKSUMS": str(path)}


def test_a_listing_names_every_entry_once_settled(tmp_path: Path) -> None:
    (tmp_path / "00001_a.sql").write_text(table_file("a"))
    (tmp_path / "notes.txt").write_text("x")
    written = time.time_ns()
    assert stat_listing(tmp_path, written) is None, "fresh files are not sealed"
    listing = stat_listing(tmp_path, written + LATER)
    assert listing is not None
    lines = listing.split("\n")
    assert [line.split("\0")[0] for line in lines] == ["00001_a.sql", "notes.txt"]
    found = (tmp_path / "00001_a.sql").stat()
    assert lines[0] == f"00001_a.sql\0{found.st_size} {found.st_ino} {found.st_mtime_ns} {found.st_ctime_ns}"


def test_an_edit_in_place_with_the_same_size_and_mtime_changes_the_listing(tmp_path: Path) -> None:
    path = tmp_path / "00001_a.sql"
    path.write_text(table_file("a"))
    (tmp_path / "00002_b.sql").write_text(table_file("b"))
    before = stat_listing(tmp_path, time.time_ns() + LATER)
    edit_in_place(path, b"TABLE a ", b"TABLE z ")
    after = stat_listing(tmp_path, time.time_ns() + LATER)
    assert before is not None
    assert after is not None
    changed = [line.split("\0")[0] for line in set(after.split("\n")) - set(before.split("\n"))]
    assert changed == ["00001_a.sql"]


def test_an_unreadable_or_missing_entry_is_never_sealed(tmp_path: Path) -> None:
    (tmp_path / "00001_a.sql").write_text(table_file("a"))
    (tmp_path / "00002_b.sql").symlink_to(tmp_path / "gone.sql")
    assert stat_listing(tmp_path, time.time_ns() + LATER) is None
    assert stat_listing(tmp_path / "missing", time.time_ns() + LATER) is None


def test_a_checkout_seals_its_settled_files_and_an_edit_in_place_ends_the_seal(
    dsn: str, migrations: MigrationDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    written = time.monotonic()
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    time.sleep(max(0.0, written + SETTLED_NS / 1e9 + 0.2 - time.monotonic()))

    # The run that seals changed nothing: it reads each applied file once, not again to seal.
    read: list[str] = []

    def counted(path: Path) -> str:
        read.append(path.name)
        return file_sha256(path)

    monkeypatch.setattr(ledger_entries, "file_sha256", counted)
    with connect(dsn) as conn:
        first = Migrator(conn, migrations.path, TableName.parse("_migrations")).up(lock_wait=5)
    assert (first.current, first.migrations) == (2, [])
    assert read == ["00001_a.sql", "00002_b.sql"]
    monkeypatch.undo()
    sealed = query(dsn, SEAL_ROW)
    assert len(sealed) == 1, "the settled files were sealed"
    again = run_cli("up", dsn=dsn, directory=migrations.path)
    assert again.stdout.strip() == "migrator: no migrations to run. current version: 2"
    assert query(dsn, SEAL_ROW) == sealed, "the shortcut was taken: the seal was not written again"

    # Within the same second, same size, mtime set back: the ctime still tells.
    edit_in_place(migrations.path / "00001_a.sql", b"TABLE a ", b"TABLE z ")
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert refused.stderr == EDITED
    assert versions(dsn) == [0, 1, 2]


def test_the_seal_covers_the_ledger(dsn: str, migrations: MigrationDir, tmp_path: Path) -> None:
    """A hand edit of a recorded checksum ends the seal, as one of goose's table does."""
    migrations.add("00001_a.sql", table_file("a"))
    manifest = tmp_path / "migrations.sha256"
    digest = hashlib.sha256((migrations.path / "00001_a.sql").read_bytes()).hexdigest()
    manifest.write_text(f"{digest}  00001_a.sql\n")
    env = {"MIGRATOR_CHECKSUMS": str(manifest)}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    assert len(query(dsn, SEAL_ROW)) == 1
    query(dsn, "UPDATE _migrations_ledger SET sha256 = repeat('0', 64) WHERE version_id = 1")
    refused = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert refused.returncode == 2
    assert refused.stderr == EDITED


# -- from the image: its checksum manifest stands for the files ---------------------------


def test_an_incomplete_run_leaves_no_seal(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    env = manifest_for(migrations, ["00001_a.sql", "00002_b.sql"])
    assert run_cli("up-to", "1", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    result = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1, 2]


def test_a_sealed_no_op_writes_nothing(dsn: str, migrations: MigrationDir) -> None:
    """The shortcut is taken: the seal row is read, not removed and written again (its xmin,
    the transaction that wrote it, stays the same)."""
    migrations.add("00001_a.sql", table_file("a"))
    env = manifest_for(migrations, ["00001_a.sql"])
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    seal_row = "SELECT xmin::text, sha256 FROM _migrations_ledger WHERE version_id = 0"
    sealed = query(dsn, seal_row)
    assert len(sealed) == 1
    again = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert again.stdout.strip() == "migrator: no migrations to run. current version: 1"
    assert query(dsn, seal_row) == sealed
    # Without the manifest its seal does not hold: the run reads the files, and the seal it
    # leaves (none while the files are fresh, see seal.py) is the checkout's own.
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, seal_row) != sealed


def test_a_rollback_interrupted_half_way_ends_the_seal(dsn: str, migrations: MigrationDir) -> None:
    """The rollback leaves goose's table as it was: the seal must not hide it from `up`."""
    migrations.add(
        "00001_nt.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE nt (id int);\n"
        "-- +goose Down\nDROP TABLE nt;\nSELECT 1 / 0;\n",
    )
    env = manifest_for(migrations, ["00001_nt.sql"])
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    assert run_cli("down", dsn=dsn, directory=migrations.path, env=env).returncode == 1
    assert "nt" not in tables(dsn)
    assert versions(dsn) == [0, 1]
    after = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines() == [
        "migrator: rolling back 00001_nt.sql (NO TRANSACTION) was interrupted after 1 of 2 statement(s); see status",
        "migrator: no migrations to run. current version: 1",
    ]
    assert query(dsn, "SELECT count(*) FROM _migrations_ledger WHERE version_id = 0") == [(0,)], "not sealed again"


def test_an_up_allowed_past_an_edited_file_leaves_no_seal(dsn: str, migrations: MigrationDir) -> None:
    """A seal over an edited file would let every later ``up`` shortcut past the edit it
    must refuse."""
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00001_a.sql", table_file("a") + "-- edited after it was applied\n")
    migrations.add("00002_b.sql", table_file("b"))
    env = manifest_for(migrations, ["00001_a.sql", "00002_b.sql"])
    allowed = run_cli("up", "--allow-edited", dsn=dsn, directory=migrations.path, env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert versions(dsn) == [0, 1, 2]
    assert query(dsn, "SELECT count(*) FROM _migrations_ledger WHERE version_id = 0") == [(0,)], "sealed"
    refused = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert refused.returncode == 2
    assert "00001_a.sql" in refused.stderr


def test_sealed_noop_is_invalidated_by_any_write_to_the_goose_table(
    dsn: str, migrations: MigrationDir, tmp_path: Path
) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    env = write_manifest(migrations, tmp_path / "migrations.sha256")
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    assert query(dsn, "SELECT filename FROM _migrations_ledger WHERE version_id = 0") == [("(verified state)",)]
    again = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert again.stdout.strip() == "migrator: no migrations to run. current version: 2"

    # goose (or a hand) rolls back version 2 behind our back: the seal no longer holds.
    query(dsn, "DROP TABLE b")
    query(dsn, "DELETE FROM _migrations WHERE version_id = 2")
    rerun = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith("OK   00002_b.sql")
    assert "b" in tables(dsn)

    # A manifest that does not list exactly the directory's files is ignored, seal and all.
    migrations.add("00003_c.sql", "-- +goose Up\nCREATE TABLE c (id bigint);\n")
    stale = run_cli("up", dsn=dsn, directory=migrations.path, env=env)
    assert stale.returncode == 0
    assert stale.stdout.startswith("OK   00003_c.sql")
    assert versions(dsn) == [0, 1, 2, 3]


def test_a_hand_edit_that_keeps_counts_and_sums_breaks_the_seal(dsn: str, migrations: MigrationDir) -> None:
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        migrations.add(f"0000{version}_{name}.sql", f"-- +goose Up\nCREATE TABLE IF NOT EXISTS {name} (id int);\n")
    manifest = migrations.path.parent / "migrations.sha256"
    listing = subprocess.run(["sha256sum", "--", *sorted(p.name for p in migrations.path.iterdir())],
                             cwd=migrations.path, capture_output=True, text=True, check=True)  # fmt: skip
    manifest.write_text(listing.stdout)
    env = {"MIGRATOR_CHECKSUMS": str(manifest)}
    assert run_cli("up", dsn=dsn, directory=migrations.path, env=env).returncode == 0
    # Rows 0, 1, 2, 3 become 0, 0, 3, 3: same count, sum, maximum and last id; 1 and 2 unapplied.
    query(dsn, "UPDATE _migrations SET version_id = 0 WHERE version_id = 1")
    query(dsn, "UPDATE _migrations SET version_id = 3 WHERE version_id = 2")
    result = run_cli("up", "--allow-missing", dsn=dsn, directory=migrations.path, env=env)
    assert result.returncode == 0, result.stderr
    assert rolled_back(result) == ["00001_a.sql", "00002_b.sql"]
