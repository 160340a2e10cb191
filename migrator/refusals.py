"""Why a command refuses to start, as typed errors carrying the facts.

Each is an InputError: nothing was changed. The message says what is wrong; which flag
gets past it is the command line's to say (operator_text.error_message), since a library
caller sets an Options field instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.errors import InputError
from migrator.interruptions import InterruptedRun, interruption_advice
from migrator.source import Migration


@dataclass(frozen=True)
class VanishedFile:
    """An applied version whose file is gone from the directory."""

    version: int
    file: str


class DriftRefused(InputError):
    """Applied files were edited, or removed, since they were applied."""

    edited: list[Migration]
    vanished: list[VanishedFile]

    def __init__(self, edited: list[Migration], vanished: list[VanishedFile]):
        self.edited = edited
        self.vanished = vanished
        problems = [f"{m.filename} was edited after it was applied" for m in edited]
        problems += [f"{v.file} (version {v.version}) was applied but its file is gone" for v in self.vanished]
        super().__init__("; ".join(problems))


class OutOfOrderRefused(InputError):
    """Pending files older than the highest applied version: goose applies none of them."""

    missing: list[Migration]
    highest: int

    def __init__(self, missing: list[Migration], highest: int):
        self.missing = missing
        self.highest = highest
        names = ", ".join(m.filename for m in missing)
        super().__init__(
            f"{len(missing)} pending migration(s) older than the highest applied version {highest}: {names}"
        )


class InterruptedRunRefused(InputError):
    """A NO TRANSACTION run stopped part-way; rolling back other files would strand it."""

    interrupted: list[InterruptedRun]

    def __init__(self, interrupted: list[InterruptedRun]):
        self.interrupted = interrupted
        super().__init__(
            "; ".join(interruption_advice(e) for e in self.interrupted)
            + ". Rolling back other files first would leave it half done"
        )
