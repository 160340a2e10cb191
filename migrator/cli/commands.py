"""What each command does: its checks, the library calls, and which report it prints (reports.py).

Each handler takes its command's arguments (arguments.py), already typed and checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg

from migrator.api import Migrator
from migrator.cli import arguments as a
from migrator.cli.reports import (
    emit_json,
    print_event,
    print_plan,
    print_result,
    print_status,
    status_document,
    warn,
)
from migrator.dsn import connect, pgx_options, redact
from migrator.errors import DriftFound, InputError, LintFindings, RehearsalFailed
from migrator.history import History, RunPlace, RunRecorder
from migrator.lint import find_config, lint, lint_if_installed
from migrator.operator_text import error_message
from migrator.options import Options
from migrator.own_transaction import note
from migrator.parser import Direction, parse_file
from migrator.planning import refuse_drift
from migrator.source import Migration, collect, missing_directory
from migrator.status import Status
from migrator.table_name import TableName

T = TypeVar("T")


def _migrator(conn: psycopg.Connection, args: a.Arguments, options: Options | None = None) -> Migrator:
    """The migrator of a command that reads."""
    return Migrator(
        conn,
        args.directory,
        args.table,
        options=options,
        manifest=args.manifest,
        on_event=print_event,
        env=args.environ,
    )


def _applying(conn: psycopg.Connection, args: a.Up | a.Down | a.MigrateTo, command: str) -> Migrator:
    """The migrator of a command that writes, recording its run (as ``command``) in the run history."""
    recorder = RunRecorder(
        args.table,
        command,
        lambda: connect(args.dsn, missing=args.missing_database),
        lambda text: redact(text, args.dsn),
        digests=lambda conn: _schema_digests(conn, args.table),
        place=RunPlace(args.image, args.allocation, args.deployment),
    )
    return Migrator(
        conn,
        args.directory,
        args.table,
        options=args.options,
        manifest=args.manifest,
        safety=args.safety,
        recorder=recorder,
        on_event=print_event,
        run_timeout=args.run_timeout,
        env=args.environ,
    )


# The rehearsal's and the snapshot's modules are imported where they are used: every command,
# a sealed no-op `up` in Nomad included, would pay for them (40 to 107 ms measured on this
# 2-core machine at load 7).


def _schema_digests(conn: psycopg.Connection, table: TableName) -> dict[str, str]:
    from migrator.schema_snapshot import schema_digests  # noqa: PLC0415

    return schema_digests(conn, table)


def _database(args: a.Arguments) -> psycopg.Connection:
    """The session of the command: read-only unless the command writes."""
    if not args.directory.is_dir():
        raise missing_directory(args.directory)  # before connecting
    return _connect(args)


def _connect(args: a.Arguments) -> psycopg.Connection:
    if dropped := pgx_options(args.dsn):
        warn(
            f"ignoring {', '.join(dropped)} in the connection string: options of goose's driver (pgx) that libpq"
            " does not know; the migrator prepares no statement on the server"
        )
    return connect(args.dsn, read_only=not args.writes, missing=args.missing_database)


def _read_status(migrator: Migrator) -> Status:
    status = migrator.status(tolerate_unreadable_ledger=True)
    if status.ledger_unreadable:
        warn(status.ledger_unreadable)
    return status


# -- writing commands ------------------------------------------------------------------


def _up(args: a.Up, command: str, *, target: int | None = None, by_one: bool = False) -> None:
    with _database(args) as conn:
        migrator = _applying(conn, args, command)
        print_result(migrator.up(target=target, by_one=by_one, lock_wait=args.lock_wait))


def up(args: a.Up) -> None:
    _up(args, "up")


def up_by_one(args: a.Up) -> None:
    _up(args, "up-by-one", by_one=True)


def up_to(args: a.UpTo) -> None:
    _up(args, f"up-to {args.version}", target=args.version)


def _down(args: a.Down, command: str, *, target: int | None = None, reset: bool = False) -> None:
    with _database(args) as conn:
        migrator = _applying(conn, args, command)
        print_result(migrator.down(target=target, reset=reset, lock_wait=args.lock_wait))


def down(args: a.Down) -> None:
    _down(args, "down")


def down_to(args: a.DownTo) -> None:
    _down(args, f"down-to {args.version}", target=args.version)


def reset(args: a.Down) -> None:
    _down(args, "reset", reset=True)


def redo(args: a.Down) -> None:
    with _database(args) as conn:
        print_result(_applying(conn, args, "redo").redo(lock_wait=args.lock_wait))


def migrate_to(args: a.MigrateTo) -> None:
    command = f"migrate-to {'latest' if args.version is None else args.version}"
    with _database(args) as conn:
        migrator = _applying(conn, args, command)
        print_result(migrator.migrate_to(args.version, lock_wait=args.lock_wait, rollback_id=args.rollback_id))


# -- reading commands ------------------------------------------------------------------


def status(args: a.Json) -> None:
    from migrator.drift import changes_since_last_run  # noqa: PLC0415

    with _database(args) as conn:
        found = _read_status(_migrator(conn, args))
        change = changes_since_last_run(conn, args.table)
    if args.as_json:
        document = status_document(found, str(args.table))
        document["schema_changed"] = change and {"since_run_at": change.run_at.isoformat(), "schemas": change.schemas}
        emit_json(document)
        return
    print_status(found)
    if change is not None:
        print(
            f"\nmigrator: the schema changed since the run at {change.run_at:%Y-%m-%d %H:%M:%S%z}, the last that"
            f" migrated it (schemas: {', '.join(change.schemas)}); `drift --scratch-dsn ...` names each object"
        )


def version(args: a.Arguments) -> None:
    with _database(args) as conn:
        print(f"migrator: version {_read_status(_migrator(conn, args)).current}")


def history(args: a.Json) -> None:
    with _database(args) as conn:
        runs = History(conn, args.table).runs()
    if args.as_json:
        emit_json({"runs": [run.as_dict() for run in runs]})
        return
    if not runs:
        print("migrator: no recorded runs")
    for run in runs:
        finished = f"{(run.finished_at - run.started_at).total_seconds():.2f}s" if run.finished_at else "-"
        applied = ",".join(map(str, run.applied)) or "-"
        when = f"{run.started_at:%Y-%m-%d %H:%M:%S%z}"
        print(f"{when}  {run.outcome:<11} {finished:>9}  {run.command:<24} applied={applied}", end="")
        print(f"  image={run.image or '-'}  alloc={run.allocation or '-'}")
        if run.error:
            print(f"    {run.error}")


def plan(args: a.Plan) -> None:
    with _database(args) as conn:
        migrator = _migrator(conn, args, args.options)
        steps = migrator.plan_up(status=_read_status(migrator))
    print_plan(steps, lint_if_installed([(s.migration, s.parsed) for s in steps], args.directory), as_json=args.as_json)


def lint_command(args: a.Lint) -> None:
    if args.every_file:
        files = [(m, parse_file(m.path, Direction.UP, args.environ)) for m in collect(args.directory) if not m.go]
    else:
        with _database(args) as conn:
            migrator = _migrator(conn, args, args.options)
            steps = migrator.plan_up(status=_read_status(migrator), sql_only=True)
        files = [(s.migration, s.parsed) for s in steps]
    for migration, parsed in files:
        if (said := note(parsed)) is not None:
            print(f"{migration.filename}: note: {said}")
    findings = lint(files, find_config(args.directory))
    for finding in findings:
        print(finding)
    if findings:
        files_hit = len({f.filename for f in findings})
        raise LintFindings(f"lint: {len(findings)} finding(s) in {files_hit} of {len(files)} file(s)")
    print(f"migrator: lint found nothing in {len(files)} file(s)")


def _read_against_scratch(args: a.Rehearsing, read: Callable[[psycopg.Connection, str], T]) -> T:
    """``read(target, scratch_dsn)`` on a read-only session of the target."""
    if not args.scratch_dsn:
        raise InputError(
            f"no scratch server: pass --scratch-dsn or set {a.SCRATCH_DSN_ENV} (a PostgreSQL server where the"
            " migrator may create and drop a throwaway database)"
        )
    with _database(args) as conn:
        return read(conn, args.scratch_dsn)


def _show(args: a.Json, document: Callable[[], object], text: Callable[[], None]) -> None:
    if args.as_json:
        emit_json(document())
    else:
        text()


def rehearse(args: a.Rehearse) -> None:
    from migrator import rehearsal  # noqa: PLC0415
    from migrator.rehearsal_report import print_rehearsal, rehearsal_document  # noqa: PLC0415

    found = _read_against_scratch(
        args,
        lambda conn, scratch: rehearsal.rehearse(
            conn,
            scratch,
            args.directory,
            args.table,
            options=args.options,
            safety=args.safety,
            exclude_schemas=args.exclude_schemas,
            env=args.environ,
        ),
    )
    _show(args, lambda: rehearsal_document(found), lambda: print_rehearsal(found))
    if not found.passed:
        raise RehearsalFailed("rehearsal failed: " + "; ".join(found.failures))


def drift(args: a.Rehearsing) -> None:
    from migrator import rehearsal  # noqa: PLC0415
    from migrator.rehearsal_report import drift_document, print_drift_check  # noqa: PLC0415

    found = _read_against_scratch(
        args,
        lambda conn, scratch: rehearsal.check_drift(
            conn,
            scratch,
            args.directory,
            args.table,
            safety=args.safety,
            exclude_schemas=args.exclude_schemas,
            env=args.environ,
        ),
    )
    _show(args, lambda: drift_document(found), lambda: print_drift_check(found))
    if found.drift is None:
        raise RehearsalFailed(f"drift: the applied migrations could not be replayed: {found.replay.message}")
    if found.drift.found:
        raise DriftFound(f"drift: {len(found.drift.lines())} object(s) differ from what the applied migrations build")


# -- commands without a database -------------------------------------------------------


def applied_file_problems(args: a.Arguments, migrations: list[Migration]) -> list[str]:
    """validate's check against the database: applied files that were edited or removed."""
    with _connect(args) as conn:
        # status reads checksums of the files' bytes: ENVSUB's environment is not needed here.
        migrator = Migrator(conn, migrations, args.table, manifest=args.manifest)
        try:
            refuse_drift(_read_status(migrator))
        except InputError as exc:
            return [error_message(exc)]
    return []
