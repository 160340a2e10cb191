"""Lets mutmut see what a migrator subprocess ran, tries a mutant's quick tests first, and
stops a test that a mutant sent into an endless loop.

mutmut picks the tests for a mutant from the functions each test reached, recorded inside
the pytest process. Some tests run ``python -m migrator`` as a child process, as Nomad
does, so while mutmut collects those records the child writes the functions it reached to
a file, and the test adds them to the parent's record. Outside mutmut this does nothing.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_HITS_ENV = "MIGRATOR_MUTMUT_HITS"
# Far above any test's time under load (the slowest, goose interop, takes about 16 s alone)
# and far below mutmut's own limit for a mutant (ten times all its tests' time, several
# minutes for a parser function): a mutant that loops forever fails its first test in a
# minute instead of holding a worker for ten.
_TEST_LIMIT_SECONDS = 60
# Run as the child instead of ``-m migrator`` while mutmut collects its records.
_RECORDING_CHILD = (
    "import atexit, json, os, runpy, sys\n"
    "from mutmut.state import state\n"
    "atexit.register(lambda: open(os.environ['" + _HITS_ENV + "'], 'w').write(json.dumps(sorted(state()._stats))))\n"
    "sys.argv[0] = 'migrator'\n"
    "runpy.run_module('migrator', run_name='__main__', alter_sys=True)\n"
)


def collecting() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def _under_mutant() -> bool:
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


class MutantTooSlow(Exception):
    """A test ran past the limit under a mutant: the mutant is caught, as by mutmut's timeout."""


@contextmanager
def time_limit() -> Iterator[None]:
    """Around one test, under a mutant only."""
    if not _under_mutant():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise MutantTooSlow(f"over {_TEST_LIMIT_SECONDS} s under {os.environ['MUTANT_UNDER_TEST']}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, _TEST_LIMIT_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def child_command() -> list[str]:
    """The arguments that replace ``-m migrator`` for a child process."""
    return ["-c", _RECORDING_CHILD] if collecting() else ["-m", "migrator"]


@contextmanager
def recorded_child(env: dict[str, str]) -> Iterator[None]:
    """Around one child run: gives it a file for its record, then adds that record here."""
    if not collecting():
        yield
        return
    from mutmut.state import state  # noqa: PLC0415 (only importable where mutmut runs)

    descriptor, name = tempfile.mkstemp(prefix="mutmut-hits-")
    os.close(descriptor)
    # A child may run as another user (setpriv): it must still be able to write its record.
    os.chmod(name, 0o666)
    env[_HITS_ENV] = name
    try:
        yield
        text = Path(name).read_text()
        state()._stats.update(json.loads(text) if text else [])
    finally:
        Path(name).unlink(missing_ok=True)


def fastest_first(items: list[pytest.Item]) -> None:
    """Under a mutant, order the tests by the time each took in mutmut's mapping run.

    mutmut passes a mutant's tests in no particular order and stops at the first failure
    (``-x``): a mutant that one quick test catches should not wait for the slow ones."""
    if not _under_mutant():
        return
    # The tests run from mutants/, where mutmut keeps the durations it measured.
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
