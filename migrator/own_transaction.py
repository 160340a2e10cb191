"""A file that runs in a transaction and ends that transaction itself, as goose runs it.

goose sends a transactional file's statements inside its own transaction, so the file's
``COMMIT`` (or ``END``, ``ROLLBACK``, ``PREPARE TRANSACTION``) ends that transaction where
it stands; the statements after it run in autocommit, or in a transaction the file begins
itself, and goose records the version afterwards. The migrator runs such a file the same
way (applying.py). Here is what it says about one before it runs (validate, plan, show,
lint, pulumi preview) and, when a statement after the split fails, what stays applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrator.pg_grammar import ENDS_TRANSACTION, Command, Kind

if TYPE_CHECKING:
    from migrator.parser import ParsedMigration

_SETTLES = {Kind.COMMIT: "commits", Kind.ROLLBACK: "rolls back", Kind.PREPARE: "prepares"}
_SETTLED = {
    Kind.COMMIT: "committed",
    Kind.ROLLBACK: "rolled back by its own {name} at line {line}",
    Kind.PREPARE: "prepared by its own {name} at line {line} (COMMIT PREPARED or ROLLBACK PREPARED settles them)",
}


def transaction_ends(parsed: ParsedMigration) -> list[Command]:
    """The commands that end a transaction in a file that runs in one: the migration's own
    at the first of them, then any the file began itself."""
    if not parsed.use_tx:
        return []
    return [c for c in parsed.commands if c.kind in ENDS_TRANSACTION and c.in_block]


def first_split(parsed: ParsedMigration) -> int | None:
    """The number of the statement that ends the migration's transaction, if one does."""
    ends = transaction_ends(parsed)
    return ends[0].statement if ends else None


def note(parsed: ParsedMigration) -> str | None:
    """How such a file runs, in one sentence; None for any other file."""
    ends = transaction_ends(parsed)
    if not ends:
        return None
    first, total = ends[0], len(parsed.statements)
    settled = f"{_SETTLES[first.kind]} {_span(1, first.statement)} there"
    if first.statement < total:
        rest = f"runs {_span(first.statement + 1, total)} outside that transaction, then records the version"
    else:
        rest = "records the version after it, outside that transaction"
    text = (
        f"its own {first.name} at line {first.line} (statement {first.statement}) ends the transaction it runs"
        f" in: as goose does, the migrator {settled} and {rest}"
    )
    if first.kind is Kind.COMMIT and first.statement < total:
        text += f"; a failure after line {first.line} cannot undo what was committed"
    if len(ends) > 1:
        text += "; it ends a transaction again at " + ", ".join(f"line {c.line} ({c.name})" for c in ends[1:])
    return text


def what_stays(parsed: ParsedMigration, failed: int, *, rolled_back_open: bool) -> str:
    """What of the file stays applied when statement ``failed`` (after the migration's own
    transaction ended) failed; ``rolled_back_open``: a transaction the file began was open
    then and was rolled back with the failure."""
    first = transaction_ends(parsed)[0]
    fates: list[tuple[list[int], str]] = []
    members: list[int] = []  # the statements of the open transaction block
    open_block = True
    for number in range(1, failed):
        commands = [
            c for c in parsed.commands if c.statement == number and (c.kind is Kind.BEGIN or c.kind in ENDS_TRANSACTION)
        ]
        if open_block:
            members.append(number)
        for command in commands:
            if command.kind is Kind.BEGIN and not open_block:
                open_block, members = True, [number]
            elif command.kind in ENDS_TRANSACTION and command.in_block:
                fates.append((members, _SETTLED[command.kind].format(name=command.name, line=command.line)))
                open_block, members = command.chain, []
        if not open_block and not commands:
            fates.append(([number], "committed"))  # autocommit: each statement its own transaction
    if rolled_back_open:
        fates.append((members, "rolled back with the failure, in the transaction the file had begun"))
    said = [f"{_listed(parsed, numbers)} {fate}" for numbers, fate in _merged(fates) if numbers]
    return (
        f"the file ended the migration's transaction itself with its {first.name} at line {first.line}, so"
        f" {'; '.join(said)}"
    )


def _merged(fates: list[tuple[list[int], str]]) -> list[tuple[list[int], str]]:
    """Neighbours with the same fate as one: statements 1 to 3 committed, then 5 committed."""
    merged: list[tuple[list[int], str]] = []
    for numbers, fate in fates:
        if merged and merged[-1][1] == fate:
            merged[-1] = (merged[-1][0] + numbers, fate)
        else:
            merged.append((list(numbers), fate))
    return merged


def _listed(parsed: ParsedMigration, numbers: list[int]) -> str:
    lines = ", ".join(f"{n} (line {parsed.statements[n - 1].line})" for n in numbers)
    return f"statement {lines}" if len(numbers) == 1 else f"statements {lines}"


def _span(first: int, last: int) -> str:
    return f"statement {first}" if first == last else f"statements {first} to {last}"
