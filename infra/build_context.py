"""The image's build context, written out so that the Docker provider sees only its content.

pulumi-docker's ``Check`` hashes the build context into ``build.contextDigest``, and that hash
includes every file's mode (provider/provider.go ``hashContext``). A checkout made under
another umask would then change the digest, and the provider would build and push the same
tag again, which an immutable repository refuses. So the program copies the hashed files
(``infra.image_content.image_files``) to ``.image-context/<content hash>/`` under the project
root with fixed modes, and gives the provider that directory by a relative path: identical
inputs from every checkout, whatever its path, umask or file times.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from infra.image_content import content_hash, image_files

CONTEXT_ROOT = ".image-context"
FILE_MODE = 0o644
DIRECTORY_MODE = 0o755


def relative_context(digest: str) -> str:
    return f"{CONTEXT_ROOT}/{digest}"


def _write(source: Path, target: Path) -> None:
    names = image_files(source)
    folders = sorted({folder for name in names for folder in (target / name).parents if folder.is_relative_to(target)})
    for folder in folders:
        folder.mkdir(exist_ok=True)
        os.chmod(folder, DIRECTORY_MODE)
    for name in names:
        shutil.copyfile(source / name, target / name)
        os.chmod(target / name, FILE_MODE)


def materialise(root: Path, digest: str) -> str:
    """Writes the context for ``digest`` (the content hash of ``root``) unless a complete copy
    is there, removes contexts of other hashes, and returns its path relative to ``root``."""
    base = root / CONTEXT_ROOT
    base.mkdir(exist_ok=True)
    final = root / relative_context(digest)
    if not (final.is_dir() and content_hash(final) == digest):
        shutil.rmtree(final, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=base))
        try:
            _write(root, staging)
            os.replace(staging, final)
        except OSError:
            # Another run wrote the same context first: keep theirs if it is complete.
            shutil.rmtree(staging)
            if not (final.is_dir() and content_hash(final) == digest):
                raise
    for entry in base.iterdir():
        if entry != final and not entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)
    return relative_context(digest)
