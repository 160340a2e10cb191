"""Which files the image holds, and the content hash that names it.

The hash is a contract: every image tag in every registry is one, so a change of its
encoding renames every image and redeploys every stack. Its definition is written out here
once more, independently, and pinned by a literal value.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from infra.image_content import content_hash, image_files

TREE = {
    ".dockerignore": b"*\n",
    "migrations/00001_a.sql": b"-- +goose Up\nSELECT 1;\n",
    "migrations/notes.txt": b"not a migration",
    "migrator/__init__.py": b"",
    "migrator/Dockerfile": b"FROM scratch\n",
    "migrator/requirements.txt": b"psycopg\n",
    "migrator/sub/ignored.py": b"# in no pattern",
    "README.md": b"not in the image",
}
IN_THE_IMAGE = [
    ".dockerignore",
    "migrations/00001_a.sql",
    "migrator/Dockerfile",
    "migrator/__init__.py",
    "migrator/requirements.txt",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, content in TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    return tmp_path


def test_the_image_holds_exactly_the_listed_patterns(tree: Path) -> None:
    assert image_files(tree) == IN_THE_IMAGE


def test_a_missing_folder_holds_nothing(tree: Path) -> None:
    for name in ("migrations/00001_a.sql", "migrations/notes.txt"):
        (tree / name).unlink()
    (tree / "migrations").rmdir()
    assert image_files(tree) == [name for name in IN_THE_IMAGE if not name.startswith("migrations/")]


def written_definition(root: Path) -> str:
    """SHA-256 over, per file in path order: path length (8 bytes, big-endian), path, size
    (8 bytes, big-endian), bytes."""
    digest = hashlib.sha256()
    for name in IN_THE_IMAGE:
        path, content = name.encode(), (root / name).read_bytes()
        digest.update(len(path).to_bytes(8, "big") + path + len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def test_the_hash_is_the_written_definition(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)  # relative to the root it is given, not to the working directory
    assert content_hash(tree) == written_definition(tree)
    assert content_hash(tree) == "331adbc3b94654295a58de2c1a73497aa1447159c90e97f6e9f1e6615741d5db"


def test_a_file_larger_than_one_read_is_hashed_whole(tree: Path) -> None:
    (tree / "migrations/00001_a.sql").write_bytes(os.urandom(3 * (1 << 20) + 5))
    assert content_hash(tree) == written_definition(tree)
