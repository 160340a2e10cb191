"""How a NO TRANSACTION run that stopped part-way is described: what ran, and what to do.

The ledger records such a run statement by statement; ``InterruptedRun`` is that record as
the library shows it (``Status``, events, refusals): ``from_entry`` converts it where the
status is read, and nothing else sees the ledger's entry. These sentences turn it into what
the operator needs to repair it, in refusals and in ``status``.
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


# The direction a file was running in when it stopped, by the state the ledger left it in.
_DIRECTIONS = {State.APPLYING: Direction.UP, State.REVERTING: Direction.DOWN}


def from_entry(entry: Entry) -> InterruptedRun:
    """The ledger's entry of an interrupted file, as the library shows it."""
    return InterruptedRun(
        entry.version, entry.filename, _DIRECTIONS[entry.state], entry.statements_done, entry.statements_total
    )


def ledger_state(run: InterruptedRun) -> State:
    """The state the ledger records ``run`` in (``status --json`` shows it)."""
    return next(state for state, direction in _DIRECTIONS.items() if direction is run.direction)


def describe_interruption(run: InterruptedRun) -> str:
    doing = "applying" if run.direction is Direction.UP else "rolling back"
    return (
        f"{doing} {run.file} (NO TRANSACTION) was interrupted after {run.statements_done} of"
        f" {run.statements_total} statement(s)"
    )


def interruption_advice(run: InterruptedRun) -> str:
    """What to do about a NO TRANSACTION file that stopped part-way, precisely."""
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
