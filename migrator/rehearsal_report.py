"""What ``rehearse`` and ``drift`` print: the operator's text, or one JSON document each."""

from __future__ import annotations

from dataclasses import asdict

from migrator.data_checks import Verdict
from migrator.drift import Drift
from migrator.errors import Failure
from migrator.operator_text import format_duration
from migrator.rehearsal import DownCheck, DriftCheck, FileRehearsal, Rehearsal, Replay


def _failure(failure: Failure | None) -> dict[str, object] | None:
    return None if failure is None else asdict(failure)


def _replay_document(replay: Replay) -> dict[str, object]:
    return {
        "replayed": replay.replayed,
        "unreplayable": replay.unreplayable,
        "edited": replay.edited,
        "complete": replay.complete,
        "failure": _failure(replay.failure),
        "message": replay.message,
        "limitation": replay.limitation,
    }


def drift_document(found: DriftCheck) -> dict[str, object]:
    return {
        "server": found.server,
        "database": found.database,
        "target_version": found.target_version,
        "scratch_version": found.scratch_version,
        "seconds": round(found.seconds, 3),
        "replay": _replay_document(found.replay),
        "drift": None if found.drift is None else found.drift.as_dict(),
        "roles_appeared": found.roles_appeared,
    }


def _down_document(down: DownCheck | None) -> dict[str, object] | None:
    if down is None:
        return None
    return {
        "restores": down.restores,
        "failure": _failure(down.failure),
        "message": down.message,
        "leftovers": None if down.leftovers is None else down.leftovers.as_dict(),
        "up_again_failure": _failure(down.up_again_failure),
        "up_again_message": down.up_again_message,
        "not_checked": down.not_checked,
    }


def _file_document(found: FileRehearsal) -> dict[str, object]:
    return {
        "version": found.migration.version,
        "name": found.migration.filename,
        "transaction": found.transaction,
        "applied": found.applied,
        "seconds": round(found.seconds, 3),
        "failure": _failure(found.failure),
        "message": found.message,
        "limitation": found.limitation,
        "locks": [
            {
                "statement": taken.statement,
                "line": taken.line,
                "locks": [
                    {
                        "relation": lock.relation,
                        "kind": lock.kind,
                        "mode": lock.mode,
                        "blocks": lock.blocks,
                        "blocks_the_table": lock.blocks_the_table,
                    }
                    for lock in taken.locks
                ],
            }
            for taken in found.locks
        ],
        "down": _down_document(found.down),
    }


def rehearsal_document(found: Rehearsal) -> dict[str, object]:
    return {
        "passed": found.passed,
        "failures": found.failures,
        "seconds": round(found.seconds, 3),
        **drift_document(found.base),
        "files": [_file_document(file) for file in found.files],
        "not_run": [{"version": m.version, "name": m.filename} for m in found.not_run],
        "data_checks": [check.as_dict() for check in found.data_checks],
    }


# -- text ------------------------------------------------------------------------------


def _base_lines(found: DriftCheck) -> list[str]:
    lines = [f"-- on the throwaway database {found.database} of the scratch server {found.server}, dropped afterwards"]
    if found.versions_differ:
        lines.append(
            f"-- the target runs PostgreSQL {found.target_version // 10000}, the scratch server"
            f" {found.scratch_version // 10000}: definitions may read differently there"
        )
    replay = found.replay
    lines.append(f"-- replayed {len(replay.replayed)} applied migration(s) in goose's order")
    if replay.unreplayable:
        listed = ", ".join(map(str, replay.unreplayable))
        lines.append(f"-- NOT replayed: version(s) {listed} are applied on the target but have no file here")
    if replay.edited:
        lines.append(f"-- replayed from file(s) edited since the target applied them: {', '.join(replay.edited)}")
    if replay.message is not None:
        lines.append(f"REPLAY FAILED {replay.message}")
    if replay.limitation is not None:
        lines.append(f"    rehearsal limitation: {replay.limitation}")
    if found.drift is not None:
        lines += _drift_lines(found.drift)
    if found.roles_appeared:
        roles = ", ".join(found.roles_appeared)
        lines.append(f"-- role(s) that appeared on the scratch server meanwhile, and stay there: {roles}")
    return lines


def _drift_lines(drift: Drift) -> list[str]:
    schemas = ", ".join(drift.schemas) or "none"
    if not drift.found:
        return [f"drift: none (schemas {schemas})"]
    lines = drift.lines()
    return [f"drift: {len(lines)} object(s) differ from what the applied migrations build (schemas {schemas}):"] + [
        f"    {line}" for line in lines
    ]


def _down_lines(down: DownCheck) -> list[str]:
    lines = []
    if down.message is not None:
        lines.append(f"down: FAILED {down.message}")
    if down.leftovers is not None and down.leftovers.found:
        lines.append("down: does not restore the schema its Up started from:")
        lines += [f"    {found} is not brought back" for found in down.leftovers.missing]
        lines += [f"    {found} is left behind" for found in down.leftovers.unexpected]
        lines += [
            f"    {d.expected} is left changed: was {d.expected.definition!r}, now {d.found.definition!r}"
            for d in down.leftovers.different
        ]
    elif down.leftovers is not None:
        lines.append("down: restores the schema its Up started from")
    if down.up_again_message is not None:
        lines.append(f"up again: FAILED {down.up_again_message}")
    if down.not_checked is not None:
        lines.append(f"down / up again: not run: {down.not_checked}")
    return lines


def file_lines(found: FileRehearsal) -> list[str]:
    """One pending file's lines of the report: applied or where it failed, its locks, its Down check."""
    name, took = found.migration.filename, format_duration(found.seconds)
    if not found.applied:
        lines = [f"FAIL {name} ({took}): {found.message}"]
        if found.limitation is not None:
            lines.append(f"    rehearsal limitation: {found.limitation}")
    else:
        lines = [f"OK   {name} ({took})"]
    if not found.transaction:
        lines.append("    locks: not read (NO TRANSACTION: each statement's locks end with it)")
    for taken in found.locks:
        for lock in taken.locks:
            if lock.blocks is not None:
                warning = "WARNING " if lock.blocks_the_table else ""
                where = f"statement {taken.statement} (line {taken.line})"
                lines.append(f"    {warning}{where}: {lock}: {lock.blocks} of it wait until the file commits")
    if found.down is not None:
        lines += [f"    {line}" for line in _down_lines(found.down)]
    return lines


def print_drift_check(found: DriftCheck) -> None:
    print("\n".join(_base_lines(found)))


def print_rehearsal(found: Rehearsal) -> None:
    lines = _base_lines(found.base)
    for file in found.files:
        lines += file_lines(file)
    lines += [f"NOT RUN {m.filename}" for m in found.not_run]
    for check in found.data_checks:
        if check.verdict is not Verdict.PASSES:
            lines.append(f"data: {check}")
    passing = sum(check.verdict is Verdict.PASSES for check in found.data_checks)
    if passing:
        lines.append(f"data: {passing} check(s) of the target's rows pass")
    if found.passed:
        lines.append(
            f"migrator: rehearsal passed: {len(found.files)} pending migration(s) applied ({found.seconds:.2f}s)"
        )
    print("\n".join(lines))
