"""What the command line prints: goose's text, or JSON documents, for the library's results."""

from __future__ import annotations

import json
import sys

from migrator.events import Event, RunResult
from migrator.interruptions import interruption_advice, ledger_state
from migrator.lint import Finding
from migrator.operator_text import event_line, result_line
from migrator.own_transaction import note, transaction_ends
from migrator.parser import ParsedMigration
from migrator.planning import Step
from migrator.status import Status


def emit_json(document: object) -> None:
    print(json.dumps(document, indent=2))


def warn(message: str) -> None:
    print(f"migrator: warning: {message}", file=sys.stderr)


def print_event(event: Event) -> None:
    print(event_line(event))


def print_result(result: RunResult) -> None:
    print(result_line(result))


def status_document(found: Status, table: str) -> dict[str, object]:
    edited = {m.version for m in found.edited}
    return {
        "table": table,
        "current": found.current,
        "migrations": [
            {
                "version": s.migration.version,
                "name": s.migration.filename,
                "applied": s.applied,
                "applied_at": s.applied_at.isoformat() if s.applied_at else None,
                "edited": s.migration.version in edited,
            }
            for s in found.migrations
        ],
        "pending": [m.version for m in found.pending],
        "unknown_applied": found.unknown_applied,
        "edited": sorted(edited),
        "vanished": [v.version for v in found.vanished],
        "interrupted": [
            {"version": r.version, "name": r.file, "state": ledger_state(r).value,
             "statements_done": r.statements_done, "statements_total": r.statements_total}
            for r in found.interrupted
        ],
        "checksums_checked": found.ledger_unreadable is None,
    }  # fmt: skip


def print_status(found: Status) -> None:
    edited = {m.version for m in found.edited}
    print("    Applied At                  Migration")
    print("    =======================================")
    for state in found.migrations:
        when = state.applied_at.strftime("%a %b %e %H:%M:%S %Y") if state.applied_at else "Pending"
        note = "  (EDITED since applied)" if state.migration.version in edited else ""
        print(f"    {when:<24} -- {state.migration.filename}{note}")
    for version_id in found.unknown_applied:
        vanished = next((v.file for v in found.vanished if v.version == version_id), None)
        what = f"{vanished} (file REMOVED since applied)" if vanished else f"version {version_id}"
        print(f"    {'Applied, no file':<24} -- {what}")
    for interrupted in found.interrupted:
        print(f"\nmigrator: {interruption_advice(interrupted)}.")


def ends_document(parsed: ParsedMigration) -> list[dict[str, object]]:
    """Where a file that runs in a transaction ends it itself (own_transaction.py), for JSON."""
    return [{"statement": c.statement, "line": c.line, "command": c.name} for c in transaction_ends(parsed)]


def print_statements(title: str, parsed: ParsedMigration) -> None:
    mode = "in one transaction" if parsed.use_tx else "NO TRANSACTION"
    print(f"-- {title}: {len(parsed.statements)} statement(s), {mode}")
    if (said := note(parsed)) is not None:
        print(f"-- note: {said}")
    for number, statement in enumerate(parsed.statements, start=1):
        print(f"-- statement {number} (line {statement.line})\n{statement.sql}")


def print_plan(steps: list[Step], findings: list[Finding] | None, *, as_json: bool) -> None:
    """The files the next run applies, with squawk's findings (None: squawk is not installed)."""
    if as_json:
        emit_json(
            {
                "pending": [
                    {
                        "version": step.migration.version,
                        "name": step.migration.filename,
                        "transaction": step.parsed.use_tx,
                        "transaction_ends": ends_document(step.parsed),
                        "statements": [s.sql for s in step.parsed.statements],
                        "lint": None
                        if findings is None
                        else [f.as_dict() for f in findings if f.filename == step.migration.filename],
                    }
                    for step in steps
                ]
            }
        )
        return
    if not steps:
        print("migrator: nothing pending")
    for step in steps:
        print_statements(step.migration.filename, step.parsed)
    for finding in findings or []:
        print(f"-- lint: {finding}")
