"""What goes into the migrator image, and the content hash that names it.

The image build context (``.dockerignore``) and the hash cover the same files, so the
tag changes exactly when the image's content does: never for timestamps or file modes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Keep in step with .dockerignore; tests/test_image.py builds the image and compares.
IMAGE_FILES = (
    ".dockerignore",
    "migrations/*.sql",
    "migrator/*.py",
    "migrator/Dockerfile",
    "migrator/requirements.txt",
)
_CHUNK = 1 << 20


def image_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file the image holds, sorted."""
    found = {path.relative_to(root).as_posix() for pattern in IMAGE_FILES for path in root.glob(pattern)}
    return sorted(name for name in found if (root / name).is_file())


def content_hash(root: Path) -> str:
    """SHA-256 over each file's path and bytes, length-prefixed so no two trees collide."""
    digest = hashlib.sha256()
    for name in image_files(root):
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        path = root / name
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
