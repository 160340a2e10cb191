"""``python -m migrator`` as a separate process, as Nomad runs it: one way to start it for
every test, with a clean environment and, under mutmut, a record of what it ran; and as
another user, from a copy of what it needs in a folder that user can read, wherever the
checkout and its virtualenv lie."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tests.support import REPO
from tools.mutation import mutation_support

# Variables the migrator reads a database from: a test names its own or none.
_DATABASE_VARIABLES = {"POSTGRES_CONNECTION_STRING", "GOOSE_DBSTRING", "MIGRATOR_SCRATCH_DSN"}


def child_environment(
    dsn: str | None = None, directory: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if k not in _DATABASE_VARIABLES}
    child["PYTHONPATH"] = str(REPO)
    if dsn is not None:
        child["POSTGRES_CONNECTION_STRING"] = dsn
    if directory is not None:
        child["GOOSE_MIGRATION_DIR"] = str(directory)
    child.update(env or {})
    return child


@dataclass(frozen=True)
class AnotherUser:
    """A user id to run the migrator as (``setpriv``), and ``runtime``: a folder that user can
    read, holding the migrator package and the distributions the image installs for it
    (another_user_runtime). The interpreter is the one this virtualenv was made from: a
    virtualenv inside the checkout is no more readable than the checkout."""

    uid: int
    runtime: Path

    def python(self) -> list[str]:
        """The interpreter, run as this user."""
        interpreter = getattr(sys, "_base_executable", sys.executable)  # a virtualenv's own base
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", interpreter]

    def command(self) -> list[str]:
        return [*self.python(), *mutation_support.child_command()]

    def environment(self, child_env: dict[str, str]) -> dict[str, str]:
        path = [str(self.runtime), *mutation_support.child_path()]
        return {**child_env, "PYTHONPATH": os.pathsep.join(path), "PYTHONNOUSERSITE": "1"}


def image_requirements(repo: Path = REPO) -> list[str]:
    """The distributions the image installs for the migrator (migrator/requirements.txt)."""
    text = (repo / "migrator" / "requirements.txt").read_text()
    return re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.MULTILINE)


def another_user_runtime(destination: Path, repo: Path = REPO) -> Path:
    """Copy the migrator package of ``repo`` and the image's distributions, as this interpreter
    has them installed, into ``destination``, readable by everyone; returns it."""
    shutil.copytree(repo / "migrator", destination / "migrator", ignore=shutil.ignore_patterns("__pycache__"))
    for name in mutation_support.child_files():
        shutil.copy2(repo / name, destination / name)
    for name in image_requirements(repo):
        distribution = metadata.distribution(name)
        for file in distribution.files or []:
            source = Path(str(distribution.locate_file(file)))
            if "__pycache__" in file.parts or not source.is_file():
                continue
            target = destination / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for folder in (destination, *destination.rglob("*")):
        folder.chmod(0o755 if folder.is_dir() else 0o644 | (folder.stat().st_mode & 0o111))
    return destination


def run_migrator(
    *args: str | bytes,
    dsn: str | None = None,
    directory: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    user: AnotherUser | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run it to the end; as ``user`` when given, from its runtime folder."""
    child_env = child_environment(dsn, directory, env)
    command = [sys.executable, *mutation_support.child_command()]
    cwd = REPO
    if user is not None:
        child_env, command, cwd = user.environment(child_env), user.command(), user.runtime
    with mutation_support.recorded_child(child_env):
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )


@contextmanager
def started_migrator(
    *args: str, dsn: str | None = None, directory: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Start it in the background; on leaving, a process still running is killed."""
    child_env = child_environment(dsn, directory, env)
    with mutation_support.recorded_child(child_env):
        process = subprocess.Popen(
            [sys.executable, *mutation_support.child_command(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
            cwd=REPO,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
