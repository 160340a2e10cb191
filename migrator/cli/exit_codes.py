"""The command line's exit codes: each of the library's error classes gets its code here (the
library's exceptions carry none), the most specific class first."""

from __future__ import annotations

import signal

from migrator.errors import DriftFound, InputError, Interrupted, LintFindings, LockTimeout

EXIT_OK = 0
EXIT_FAILED = 1  # a migration or the database failed; any other error of the migrator
EXIT_BAD_INPUT = 2
EXIT_LOCK_TIMEOUT = 3
EXIT_LINT_FINDINGS = 4  # the files are valid goose, but squawk found risky statements
EXIT_DRIFT = 5  # the schema differs from what its applied migrations build
EXIT_INTERRUPTED = 128 + signal.SIGINT  # as a shell reports it; SIGTERM gives 128 + 15
EXIT_TERMINATED = 128 + signal.SIGTERM

_BY_CLASS: tuple[tuple[type[Exception], int], ...] = (
    (Interrupted, EXIT_INTERRUPTED),
    (LockTimeout, EXIT_LOCK_TIMEOUT),
    (LintFindings, EXIT_LINT_FINDINGS),
    (DriftFound, EXIT_DRIFT),
    (InputError, EXIT_BAD_INPUT),
)

HELP = (
    "exit codes: 0 done, 1 a migration or the database failed, 2 bad input or usage,"
    " 3 lock not acquired in time, 4 lint findings, 5 drift found, 130/143 interrupted by SIGINT/SIGTERM"
)


def exit_code(error: Exception) -> int:
    """The code a run that ended with ``error`` exits with."""
    return next((code for cls, code in _BY_CLASS if isinstance(error, cls)), EXIT_FAILED)
