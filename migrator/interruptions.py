"""How a NO TRANSACTION run that stopped part-way is described: what ran, and what to do.

The ledger records such a run statement by statement; ``InterruptedRun`` is that record as
the library shows it (events, refusals), and these sentences turn it into what the operator
needs to repair it, in refusals and in ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.ledger_entries import Entry, State
from migrator.parser import Direction


@dataclass(frozen=True)
class InterruptedRun:
    """A NO TRANSACTION file whose run stopped part-way: ``statements_done`` of its
    ``statements_total`` statements ran (and were not rolled back) ``direction``."""

    version: int
    file: str
    direction: Direction
    statements_done: int
    statements_total: int


def interrupted_run(entry: Entry | InterruptedRun) -> InterruptedRun:
    """The ledger's entry of an interrupted file, as the library shows it."""
    if isinstance(entry, InterruptedRun):
        return entry
    direction = Direction.UP if entry.state is State.APPLYING else Direction.DOWN
    return InterruptedRun(entry.version, entry.filename, direction, entry.statements_done, entry.statements_total)


def describe_interruption(run: Entry | InterruptedRun) -> str:
    run = interrupted_run(run)
    doing = "applying" if run.direction is Direction.UP else "rolling back"
    return (
        f"{doing} {run.file} (NO TRANSACTION) was interrupted after {run.statements_done} of"
        f" {run.statements_total} statement(s)"
    )


def interruption_advice(run: Entry | InterruptedRun) -> str:
    """What to do about a NO TRANSACTION file that stopped part-way, precisely."""
    run = interrupted_run(run)
    command = "up" if run.direction is Direction.UP else "down"
    ran = (
        f"statements 1 to {run.statements_done} ran and were not rolled back"
        if run.statements_done
        else "no statement is known to have finished"
    )
    return (
        f"{describe_interruption(run)}: {ran}. `{command}` runs the file again from its first statement:"
        f" make those statements safe to repeat (IF NOT EXISTS, IF EXISTS) or undo them by hand, then run `{command}`"
    )
