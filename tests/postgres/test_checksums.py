"""Applied files edited or removed since they were applied, against a real PostgreSQL: the
ledger's checksum of each file's bytes, the refusal every command that runs or checks files
gives, ``--allow-edited`` (once) and ``--accept-edited`` (for good), and the image's checksum
manifest that stands for the files. The library's ``DriftRefused`` is in test_library.py, the
seal over these checksums in test_seal.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support import MigrationDir, query, table_file, versions
from tests.support.cli_runner import run_cli, write_manifest

# -- the checksum of an applied file ----------------------------------------------------


def test_crlf_files_are_checksummed_as_bytes(dsn: str, migrations: MigrationDir) -> None:
    path = migrations.path / "00001_crlf.sql"
    path.write_bytes(b"-- +goose Up\r\nCREATE TABLE crlf (id int);\r\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert query(dsn, "SELECT sha256 FROM _migrations_ledger WHERE version_id = 1") == [
        (hashlib.sha256(path.read_bytes()).hexdigest(),)
    ]
    again = run_cli("up", dsn=dsn, directory=migrations.path)
    assert again.returncode == 0, again.stderr


def test_edited_applied_file_is_refused_until_allowed(dsn: str, migrations: MigrationDir) -> None:
    first = migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    ledger = query(dsn, "SELECT version_id, filename, state FROM _migrations_ledger")
    assert ledger == [(1, "00001_a.sql", "applied")]

    first.write_text(table_file("a").replace("id int", "id int NOT NULL"))
    migrations.add("00002_b.sql", table_file("b"))
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00001_a.sql was edited after it was applied" in refused.stderr
    assert "--allow-edited" in refused.stderr
    assert versions(dsn) == [0, 1]

    validate = run_cli("validate", dsn=dsn, directory=migrations.path)
    assert validate.returncode == 2
    assert "00001_a.sql was edited" in validate.stderr
    status = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert status["edited"] == [1]
    assert status["migrations"][0]["edited"] is True
    assert "(EDITED since applied)" in run_cli("status", dsn=dsn, directory=migrations.path).stdout
    assert run_cli("plan", dsn=dsn, directory=migrations.path).returncode == 2

    allowed = run_cli("up", "--allow-edited", dsn=dsn, directory=migrations.path)
    assert allowed.returncode == 0, allowed.stderr
    assert versions(dsn) == [0, 1, 2]


def test_vanished_applied_file_is_refused(dsn: str, migrations: MigrationDir) -> None:
    first = migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    first.unlink()
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00001_a.sql (version 1) was applied but its file is gone" in refused.stderr
    status = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert status["vanished"] == [1]
    assert status["unknown_applied"] == [1]
    assert "00001_a.sql (file REMOVED since applied)" in run_cli("status", dsn=dsn, directory=migrations.path).stdout


def test_accept_edited_records_the_new_checksum_once_and_for_all(dsn: str, migrations: MigrationDir) -> None:
    path = migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    path.write_text(path.read_text() + "-- a comment added later\n")
    refused = run_cli("up", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "--accept-edited" in refused.stderr
    assert run_cli("up", "--allow-edited", dsn=dsn, directory=migrations.path).returncode == 0
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 2  # --allow-edited is once
    accepted = run_cli("up", "--accept-edited", dsn=dsn, directory=migrations.path)
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted the edit of 00001_a.sql" in accepted.stdout
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0


def test_down_to_refuses_an_edited_file(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    path = migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    path.write_text(path.read_text().replace("DROP TABLE b", "DROP TABLE b CASCADE"))
    refused = run_cli("down-to", "0", dsn=dsn, directory=migrations.path)
    assert refused.returncode == 2
    assert "00002_b.sql was edited after it was applied" in refused.stderr
    assert versions(dsn) == [0, 1, 2]
    # Only the files a rollback runs must be unedited.
    path.write_text(table_file("b"))
    migrations.add("00001_a.sql", table_file("a").replace("DROP TABLE a", "DROP TABLE a CASCADE"))
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 0
    assert versions(dsn) == [0, 1]
    # --accept-edited records the edit, then rolls back with the new Down section.
    assert run_cli("down", dsn=dsn, directory=migrations.path).returncode == 2
    accepted = run_cli("down", "--accept-edited", dsn=dsn, directory=migrations.path)
    assert accepted.returncode == 0, accepted.stderr
    assert versions(dsn) == [0]


# -- the image's checksum manifest stands for the files ---------------------------------


def test_manifest_checksums_stand_for_the_files(dsn: str, migrations: MigrationDir, tmp_path: Path) -> None:
    migrations.add("00001_a.sql", table_file("a"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    env = write_manifest(migrations, tmp_path / "m.sha256", override={"00001_a.sql": "0" * 64})
    status = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path, env=env).stdout)
    assert status["edited"] == [1], "the manifest's checksum was used, not the file's"
    plain = json.loads(run_cli("status", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert plain["edited"] == []


def test_a_manifest_of_other_files_is_ignored(dsn: str, migrations: MigrationDir) -> None:
    """A stale manifest (it does not list exactly the files) must not stand in for them:
    its checksum of 00001_a.sql is not the file's, and would report an edit that is not there."""
    migrations.add("00001_a.sql", table_file("a"))
    migrations.add("00002_b.sql", table_file("b"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    stale = migrations.path.parent / "stale.sha256"
    stale.write_text(f"{hashlib.sha256(b'an older 00001_a.sql').hexdigest()}  00001_a.sql\n")
    env = {"MIGRATOR_CHECKSUMS": str(stale)}
    for command in ("up", "validate", "down"):
        result = run_cli(command, dsn=dsn, directory=migrations.path, env=env)
        assert result.returncode == 0, (command, result.stderr)
    assert versions(dsn) == [0, 1]


def test_validate_in_the_image_takes_the_checksums_from_its_manifest(
    dsn: str, migrations: MigrationDir, tmp_path: Path
) -> None:
    """The image's manifest lists the files it was built with: validate does not hash them again."""
    migrations.add("00001_users.sql", table_file("users"))
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    other = hashlib.sha256(table_file("users").replace("users", "members").encode()).hexdigest()
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"{other}  00001_users.sql\n")
    checked = run_cli("validate", dsn=dsn, directory=migrations.path, env={"MIGRATOR_CHECKSUMS": str(manifest)})
    assert checked.returncode == 2
    assert "00001_users.sql was edited after it was applied" in checked.stderr
