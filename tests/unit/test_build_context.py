"""The image's build context under ``.image-context/<hash>/``: written once, repaired when
damaged, safe beside a concurrent run, and the only context left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from infra import build_context
from infra.build_context import CONTEXT_ROOT, materialise
from infra.image_content import content_hash, image_files
from tests.support import REPO


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the files the image holds."""
    for name in image_files(REPO):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, tmp_path / name)
    return tmp_path


def context_of(project: Path) -> Path:
    return project / materialise(project, content_hash(project))


def test_the_context_holds_exactly_the_image_files(project: Path) -> None:
    context = context_of(project)
    assert image_files(context) == image_files(project)
    assert content_hash(context) == content_hash(project)


def test_a_damaged_context_is_written_again(project: Path) -> None:
    context = context_of(project)
    victim = context / image_files(project)[-1]
    victim.write_text("-- damaged\n")
    (context / "stray.sql").write_text("not from the project")

    assert context_of(project) == context
    assert content_hash(context) == content_hash(project)
    assert not (context / "stray.sql").exists()


def test_the_work_in_progress_is_hidden_and_named_for_its_hash(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = content_hash(project)
    targets: list[Path] = []
    write = build_context._write

    def write_and_remember(source: Path, target: Path) -> None:
        targets.append(target)
        write(source, target)

    monkeypatch.setattr(build_context, "_write", write_and_remember)

    materialise(project, digest)

    [staging] = targets
    assert staging.parent == project / CONTEXT_ROOT
    assert staging.name.startswith(f".{digest[:12]}-")
    assert not staging.exists(), "renamed into place"


def test_another_runs_complete_context_is_kept(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other run renamed its copy into place first: this one's rename fails, and is fine."""
    digest = content_hash(project)

    def lose_the_race(source: str | Path, target: str | Path) -> None:
        shutil.copytree(source, target)  # theirs, complete, just before this one's rename
        raise OSError("Directory not empty")

    monkeypatch.setattr(os, "replace", lose_the_race)
    assert materialise(project, digest) == f"{CONTEXT_ROOT}/{digest}"
    assert content_hash(project / CONTEXT_ROOT / digest) == digest
    assert sorted(p.name for p in (project / CONTEXT_ROOT).iterdir()) == [digest], "no staging left behind"


def test_another_runs_incomplete_context_is_an_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = content_hash(project)

    def fail_half_written(source: str | Path, target: str | Path) -> None:
        Path(target).mkdir()
        raise OSError("Directory not empty")

    monkeypatch.setattr(os, "replace", fail_half_written)
    with pytest.raises(OSError, match="Directory not empty"):
        materialise(project, digest)
    assert [p.name for p in (project / CONTEXT_ROOT).iterdir()] == [digest], "no staging left behind"


def test_contexts_of_other_hashes_go_and_work_in_progress_stays(project: Path) -> None:
    base = project / CONTEXT_ROOT
    (base / ("0" * 64)).mkdir(parents=True)
    (base / ".0123456789ab-running").mkdir()
    (base / "stray-file").write_text("")  # not a context: in the way of nothing

    digest = content_hash(project)
    materialise(project, digest)

    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == [".0123456789ab-running", digest]
