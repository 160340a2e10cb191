"""What goes into the migrator image, and the content hash that names it.

The image build context (``.dockerignore``) and the hash cover the same files, so the
tag changes exactly when the image's content does: never for timestamps or file modes.
Only the Pulumi program (and the tests and benchmarks) use it, so it lives here, outside
the image it describes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path

# Keep in step with .dockerignore; tests/system/test_image.py builds the image and compares.
IMAGE_FILES = (
    ".dockerignore",
    "migrations/*.sql",
    "migrator/*.py",
    "migrator/cli/*.py",
    "migrator/Dockerfile",
    "migrator/requirements.txt",
)

READ_SIZE = 1 << 20


def image_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file the image holds, sorted."""
    found: set[str] = set()
    listings: dict[str, list[str]] = {}
    for pattern in IMAGE_FILES:
        folder, _, name_pattern = pattern.rpartition("/")
        if folder not in listings:
            try:
                listings[folder] = [e.name for e in os.scandir(root / folder) if e.is_file()]
            except FileNotFoundError:
                listings[folder] = []
        prefix = f"{folder}/" if folder else ""
        found.update(prefix + name for name in fnmatch.filter(listings[folder], name_pattern))
    return sorted(found)


def content_hash(root: Path) -> str:
    """SHA-256 over each file's path and bytes, length-prefixed so no two trees collide.

    Plain file descriptors, not ``Path.open``: at 10,000 files the per-file overhead is
    what separates this from ``sha256sum`` over the same files.
    """
    digest = hashlib.sha256()
    base = str(root)
    for name in image_files(root):
        encoded = name.encode()
        descriptor = os.open(os.path.join(base, name), os.O_RDONLY)
        try:
            size = os.fstat(descriptor).st_size
            digest.update(len(encoded).to_bytes(8, "big") + encoded + size.to_bytes(8, "big"))
            while chunk := os.read(descriptor, READ_SIZE):
                digest.update(chunk)
        finally:
            os.close(descriptor)
    return digest.hexdigest()
