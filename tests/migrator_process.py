"""``python -m migrator`` as a separate process, as Nomad runs it: one way to start it for
every test, with a clean environment and, under mutmut, a record of what it ran."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests import mutation_support
from tests.support import REPO

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


def run_migrator(
    *args: str | bytes,
    dsn: str | None = None,
    directory: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    run_as: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run it to the end. ``run_as`` goes before the interpreter (``setpriv ...``)."""
    child_env = child_environment(dsn, directory, env)
    with mutation_support.recorded_child(child_env):
        return subprocess.run(
            [*run_as, sys.executable, *mutation_support.child_command(), *args],
            capture_output=True,
            text=True,
            env=child_env,
            timeout=timeout,
            cwd=REPO,
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
