"""The command line run in this process, with what a child process would get: its own
environment, the repository as working directory, and stdout and stderr apart.

``python -m migrator`` is ``sys.exit(main())``, so only the interpreter's start-up differs
from a child (about 0.3 s of CPU per run, and a mutation run pays it for every test of every
mutant). Tests that need a real process use ``tests.support.migrator_process``: signals, another user,
a run in a thread or a wall-clock limit.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
from contextlib import chdir, redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from migrator.cli import program as cli
from migrator.cli.arguments import MANIFEST_ENV
from migrator.ledger_entries import file_sha256
from tests.support import REPO, MigrationDir
from tests.support.migrator_process import child_environment


def run_cli(
    *args: str | bytes,
    dsn: str | None = None,
    directory: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> subprocess.CompletedProcess[str]:
    """Run it to the end, as ``run_migrator`` does (from ``cwd``); an exception that would
    have been a traceback in a child fails the test here with its traceback."""
    argv = [os.fsdecode(arg) for arg in args]
    out, err = io.StringIO(), io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        with (
            mock.patch.dict(os.environ, child_environment(dsn, directory, env), clear=True),
            chdir(cwd),
            redirect_stdout(out),
            redirect_stderr(err),
        ):
            try:
                code = cli.main(argv)
            except SystemExit as exited:  # --help and --version
                code = exited.code if isinstance(exited.code, int) else 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(["migrator", *argv], code, out.getvalue(), err.getvalue())


def rolled_back(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The files a run reports, in the order it ran them."""
    return [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("OK ", "EMPTY"))]


def write_manifest(migrations: MigrationDir, path: Path, override: dict[str, str] | None = None) -> dict[str, str]:
    """A checksum manifest of every file in ``migrations`` at ``path`` (``override`` names a
    file's stand-in checksum), and the environment that hands it to the migrator."""
    names = sorted(p.name for p in migrations.path.iterdir())
    sums = {name: (override or {}).get(name) or file_sha256(migrations.path / name) for name in names}
    path.write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return {MANIFEST_ENV: str(path)}


def one_error(result: subprocess.CompletedProcess[str], exit_code: int = 2) -> str:
    """What a failed run printed, after checking its exit code and that it ends in one error line."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("migrator: error: "), result.stderr
    return result.stderr


def help_of(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The help ``argv --help`` prints, its words joined by single spaces."""
    with pytest.raises(SystemExit) as stopped:
        cli.parse_arguments([*argv, "--help"], {})
    assert stopped.value.code == 0
    return " ".join(capsys.readouterr().out.split())
