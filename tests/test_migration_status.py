"""The status provider and preview-time pending detection against a real database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.migration_status import MigrationStatusProvider, pending_migrations, read_database
from migrator.source import collect
from tests.conftest import REPO, MigrationDir, run_migrator
from tests.pulumi_harness import Recorder

THREE = {f"0000{v}_m{v}.sql": f"-- +goose Up\nCREATE TABLE m{v} (id int);\n" for v in (1, 2, 3)}


def outs(result: CreateResult | ReadResult | UpdateResult) -> dict[str, Any]:
    assert result.outs is not None
    return result.outs


def props(dsn: str, migrations_hash: str = "h1") -> dict[str, object]:
    return {"database_url": dsn, "table": "_migrations", "migrations_hash": migrations_hash, "job_id": "api"}


def test_provider_reports_exactly_the_applied_versions(dsn: str, migrations: MigrationDir) -> None:
    for name, body in THREE.items():
        migrations.add(name, body)
    provider = MigrationStatusProvider()
    fresh = provider.create(props(dsn))
    assert outs(fresh)["applied"] == [] and outs(fresh)["latest"] == 0 and outs(fresh)["error"] is None

    assert run_migrator("up-to", "2", dsn=dsn, directory=migrations.path).returncode == 0
    read = provider.read("migration-status", outs(fresh))
    assert outs(read)["applied"] == [1, 2] and outs(read)["latest"] == 2

    assert provider.diff("migration-status", props(dsn), props(dsn)).changes is False
    assert provider.diff("migration-status", props(dsn), props(dsn, "h2")).changes is True
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 0
    updated = provider.update("migration-status", props(dsn), props(dsn, "h2"))
    assert outs(updated)["applied"] == [1, 2, 3] and outs(updated)["latest"] == 3


def test_unreachable_database_is_an_error_field_without_the_password() -> None:
    got = outs(MigrationStatusProvider().create(props("postgresql://u:Sup3rS3cret@127.0.0.1:1/x")))
    assert got["applied"] == [] and got["latest"] == 0
    assert "cannot connect" in got["error"] and "Sup3rS3cret" not in got["error"]


def test_pending_lists_exactly_the_unapplied_files(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "migrations").mkdir()
    for name, body in THREE.items():
        (tmp_path / "migrations" / name).write_text(body)
    assert run_migrator("up-by-one", dsn=dsn, directory=tmp_path / "migrations").returncode == 0
    reading = read_database(dsn, collect(tmp_path / "migrations"))
    assert [m.version for m in reading.pending] == [2, 3] and reading.applied == [1]

    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    pulumi.runtime.set_mocks(Recorder(), project="api-migrations", stack="test", preview=True)

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        return pending_migrations(pulumi.Output.secret(dsn), tmp_path).apply(lambda got: assert_equal(got, [2, 3]))

    check()
    assert logged == ["pending migration: 00002_m2.sql", "pending migration: 00003_m3.sql"]


def assert_equal(got: object, expected: object) -> None:
    assert got == expected


def test_reading_says_why_the_next_up_would_refuse(dsn: str, migrations: MigrationDir) -> None:
    edited = migrations.add("00001_m1.sql", THREE["00001_m1.sql"])
    assert run_migrator("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert read_database(dsn, collect(migrations.path)).refusal is None
    edited.write_text(THREE["00001_m1.sql"] + "-- a change\n")
    refusal = read_database(dsn, collect(migrations.path)).refusal
    assert refusal is not None and "00001_m1.sql was edited after it was applied" in refusal


def test_the_shipped_migration_is_pending_on_an_empty_database(dsn: str) -> None:
    reading = read_database(dsn, collect(REPO / "migrations"))
    assert reading.error is None and reading.applied == []
    assert [m.filename for m in reading.pending] == sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
