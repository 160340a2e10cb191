"""Corpora written to look like real ones (tests/goose/corpora/<project>/), run by the real goose and
by the migrator: the same schema (pg_dump, goose's table and ours left out), the same rows,
the same version rows and status after up, reset and mixed runs (goose half then the
migrator, and the reverse), and the same stopping point and error where a corpus's own
Down sections are broken.

What the projects hold, between them: tables with identity, uuid and check columns,
indexes, PL/pgSQL functions and triggers in StatementBegin blocks, a BEGIN ATOMIC body, DO
blocks, a procedure, CREATE INDEX CONCURRENTLY in NO TRANSACTION files (the annotation
written five ways), range and list partitions, SET search_path and SET LOCAL in files,
enums (a value added and used after the file's own COMMIT), row-level security policies,
materialized views, seeds, ENVSUB, an embed.go beside the SQL files, a StatementBegin
block ending with COMMIT, BEGIN ... COMMIT around a file's statements, and a Down section
that drops a table under a name it never had.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrator.source import collect
from tests.support import versions
from tests.support.goose_interop import Tools, data, ok, schema

CORPORA = Path(__file__).parent / "corpora"
PROJECTS = sorted(folder.name for folder in CORPORA.iterdir() if folder.is_dir())
# goose's words for a failed migration: the file, then PostgreSQL's message and code.
# Where a project's own Down sections break, as written.
BROKEN_DOWN = {"events_pipeline": "0007_archive.sql"}
GOOSE_FAILURE = re.compile(r"ERROR (\S+\.sql): failed to run SQL migration: .*?: (ERROR: .+ \(SQLSTATE \w+\))")


def project_versions(project: str) -> list[int]:
    return [m.version for m in collect(CORPORA / project) if not m.go]


def assert_same(dsn: str, other_dsn: str) -> None:
    """What goose left in one database, the migrator left in the other."""
    assert schema(dsn) == schema(other_dsn)
    assert data(dsn) == data(other_dsn)
    assert [v for v in versions(dsn)] == [v for v in versions(other_dsn)]


def test_every_project_is_a_corpus() -> None:
    """A project folder without migrations would pass every test here."""
    assert PROJECTS == ["auth_service", "blog_cms", "events_pipeline", "saas_billing"]
    assert all(len(project_versions(p)) >= 8 for p in PROJECTS)


@pytest.mark.parametrize("project", PROJECTS)
def test_up_and_reset_leave_what_goose_leaves(project: str, dsn: str, other_dsn: str) -> None:
    ours, goose = Tools(dsn, CORPORA / project), Tools(other_dsn, CORPORA / project)
    ok(ours.migrator("up"))
    ok(goose.goose("up"))
    assert_same(dsn, other_dsn)
    assert ours.assert_agree() == project_versions(project)

    by_migrator, by_goose = ours.migrator("reset"), goose.goose("reset")
    stopped = GOOSE_FAILURE.search(by_goose.stderr)
    assert (stopped and stopped.group(1)) == BROKEN_DOWN.get(project), by_goose.stderr
    if stopped is None:
        assert (by_migrator.returncode, by_goose.returncode) == (0, 0), by_migrator.stderr + by_goose.stderr
        assert versions(dsn) == [0]
    else:
        # Both stop at the same file with PostgreSQL's same error; the file was rolled back.
        assert (by_migrator.returncode, by_goose.returncode) == (1, 1)
        file, error = stopped.groups()
        assert re.fullmatch(
            rf"migrator: error: {re.escape(file)} \(down\): statement \d+ \(line \d+\) failed: {re.escape(error)};"
            rf" rolled back: .*\n",
            by_migrator.stderr,
        ), by_migrator.stderr
    assert_same(dsn, other_dsn)
    assert ours.assert_agree() == [v for v in versions(dsn) if v]


@pytest.mark.parametrize("first", ["goose", "migrator"])
@pytest.mark.parametrize("project", PROJECTS)
def test_mixed_runs_build_what_goose_alone_builds(project: str, first: str, dsn: str, other_dsn: str) -> None:
    """One tool applies the first half, the other the rest; the second rolls back two files and
    the first applies them again. The other database takes the same steps with goose alone."""
    mixed, reference = Tools(dsn, CORPORA / project), Tools(other_dsn, CORPORA / project)
    every = project_versions(project)
    half = every[len(every) // 2 - 1]
    second = "migrator" if first == "goose" else "goose"

    def step(tool: str, command: str) -> None:
        ok(mixed.goose(command) if tool == "goose" else mixed.migrator(*command.split()))
        ok(reference.goose(command))

    step(first, f"up-to {half}")
    assert mixed.assert_agree() == [v for v in every if v <= half]
    step(second, "up")
    assert_same(dsn, other_dsn)
    step(second, "down")
    step(second, "down")
    assert mixed.assert_agree() == every[:-2]
    step(first, "up")
    assert_same(dsn, other_dsn)
    assert mixed.assert_agree() == every
