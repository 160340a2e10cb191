"""How a NO TRANSACTION run that stopped part-way is described: what ran, and what to do.

The ledger records such a run statement by statement; these sentences turn an entry into
what the operator needs to repair it, in refusals and in ``status``.
"""

from __future__ import annotations

from migrator.ledger_entries import Entry, State


def describe_interruption(entry: Entry) -> str:
    doing = "applying" if entry.state is State.APPLYING else "rolling back"
    return (
        f"{doing} {entry.filename} (NO TRANSACTION) was interrupted after {entry.statements_done} of"
        f" {entry.statements_total} statement(s)"
    )


def interruption_advice(entry: Entry) -> str:
    """What to do about a NO TRANSACTION file that stopped part-way, precisely."""
    command = "up" if entry.state is State.APPLYING else "down"
    ran = (
        f"statements 1 to {entry.statements_done} ran and were not rolled back"
        if entry.statements_done
        else "no statement is known to have finished"
    )
    return (
        f"{describe_interruption(entry)}: {ran}. `{command}` runs the file again from its first statement:"
        f" make those statements safe to repeat (IF NOT EXISTS, IF EXISTS) or undo them by hand, then run `{command}`"
    )
