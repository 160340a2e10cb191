"""Lets mutmut see what a migrator subprocess ran, tries a mutant's quick tests first, and
stops a test that a mutant sent into an endless loop (in ten times its usual time).

mutmut picks the tests for a mutant from the functions each test reached, recorded inside
the pytest process. Some tests run ``python -m migrator`` as a child process, as Nomad
does, so while mutmut collects those records the child writes the functions it reached to
a file, and the test adds them to the parent's record. Outside mutmut this does nothing.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

_HITS_ENV = "MIGRATOR_MUTMUT_HITS"
# Under a mutant each test gets ten times what it took in mutmut's mapping run, and at least a
# minute: the suite runs four at once on two cores under the mutants of functions every test
# reaches, and a fixed minute let the slowest tests (goose interop, 16 s alone) expire under
# mutants that provably change nothing. Still far below mutmut's own limit for a mutant (ten
# times all its tests' time): a mutant that loops forever fails its test instead of holding a
# worker for ten times the whole suite.
_LIMIT_FACTOR = 10
_LIMIT_FLOOR_SECONDS = 60.0
# mutmut's verdict "timeout" (mutmut.stats.status_by_exit_code): caught, and told apart from
# an assertion that failed, so the score shows how many mutants only the limit caught.
_TIMEOUT_EXIT_STATUS = 36
# mutmut's fork server ignores SIGINT and its children inherit that, so Python would install no
# KeyboardInterrupt handler in a migrator started from it, and a test that interrupts one would
# wait for ever: under mutmut the child is started as Nomad starts it, with SIGINT's usual action.
_INTERRUPTIBLE = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
# While mutmut collects its records, the child also writes the functions it reached.
_RECORDING = (
    "import atexit, json, os\n"
    "from mutmut.state import state\n"
    "atexit.register(lambda: open(os.environ['" + _HITS_ENV + "'], 'w').write(json.dumps(sorted(state()._stats))))\n"
)
_RUN_MIGRATOR = (
    "import runpy, sys\nsys.argv[0] = 'migrator'\nrunpy.run_module('migrator', run_name='__main__', alter_sys=True)\n"
)


def collecting() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


def _under_mutant() -> bool:
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


class MutantTooSlow(Exception):
    """A test ran past its limit under a mutant: the mutant is caught, as by mutmut's timeout."""


@functools.cache
def _measured_seconds() -> dict[str, float]:
    """Each test's time in mutmut's mapping run, by node id. Under a mutant the tests run
    from mutants/, where mutmut keeps them."""
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return {}
    durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
    return durations


def limit_seconds(nodeid: str) -> float:
    return max(_LIMIT_FLOOR_SECONDS, _LIMIT_FACTOR * _measured_seconds().get(nodeid, 0.0))


_expired: list[str] = []


@contextmanager
def time_limit(nodeid: str) -> Iterator[None]:
    """Around one test, under a mutant only."""
    if not _under_mutant():
        yield
        return
    limit = limit_seconds(nodeid)

    def expire(signum: int, frame: object) -> None:
        _expired.append(nodeid)
        raise MutantTooSlow(f"over {limit:.0f} s under {os.environ['MUTANT_UNDER_TEST']}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def report_expiry(session: pytest.Session) -> None:
    """At the end of a mutant's run: a test that ran past its limit makes the verdict
    mutmut's "timeout" rather than "killed"."""
    if _expired:
        session.exitstatus = _TIMEOUT_EXIT_STATUS


def child_command() -> list[str]:
    """The arguments that replace ``-m migrator`` for a child process."""
    if collecting():
        return ["-c", _INTERRUPTIBLE + _RECORDING + _RUN_MIGRATOR]
    if _mutated() is not None:
        return ["-c", _INTERRUPTIBLE + _RUN_MIGRATOR]
    return ["-m", "migrator"]


def _mutated() -> ModuleType | None:
    """mutmut, when the code under test is its mutated copy (which imports it, whatever
    mutant, if any, is active: the clean run has none)."""
    return sys.modules.get("mutmut")


def child_path() -> list[str]:
    """What a child running from a copy of the migrator needs on its path besides, under mutmut:
    mutmut's own package, which mutated code and the recording child import."""
    mutmut = _mutated()
    return [str(Path(str(mutmut.__file__)).parent.parent)] if mutmut is not None else []


def child_files() -> list[str]:
    """The checkout's files such a child needs in its working directory, under mutmut: mutmut
    reads its configuration from pyproject.toml there."""
    return ["pyproject.toml"] if _mutated() is not None else []


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
    durations = _measured_seconds()
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
