"""The rehearsal: pending migrations applied to a throwaway copy of the target's schema first.

On a scratch server (scratch.py) a new database gets the target's applied versions replayed
from their files, in goose's applied order; a version without a file cannot be replayed and is
named, never guessed. The replay is compared with the live schema (drift.py). Then every pending
file is applied exactly as a deployment applies it: planned by ``planning.plan_up`` (its
refusals included), run by the same ``Applier`` with the same parser, transactions and timeouts.
Per pending file the rehearsal keeps whether it applied or where it failed, and the locks each
statement took on relations that existed before the file (statement_locks.py). Then the Down
sections run newest first, as a rollback runs them, each held to the schema its Up started
from, and Up again oldest first. The target's rows are counted where a constraint depends on
them (data_checks.py).

The target is only read: its goose table, its catalogs and those counts, in read-only
transactions. The throwaway database is dropped whatever happens (scratch.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
from psycopg import sql

from migrator import planning
from migrator.api import Migrator
from migrator.applying import Applier
from migrator.data_checks import DEFAULT_TIMEOUT, DataCheck, Verdict, predict
from migrator.drift import Drift, compare, compared_schemas
from migrator.errors import Failure, Interrupted, MigrationFailed, ParseError
from migrator.ledger import Ledger
from migrator.options import Options
from migrator.parser import Direction
from migrator.planning import Step
from migrator.safety import Safety
from migrator.schema_snapshot import Snapshot, own_tables, take_snapshot
from migrator.scratch import ScratchDatabase, throwaway_database
from migrator.server_session import own_session
from migrator.source import Migration
from migrator.statement_locks import LockObserver, RelationLock, StatementLocks
from migrator.status import Status
from migrator.store import Store
from migrator.table_name import TableName

_NAME = r'"(?P<name>(?:[^"]|"")*)"'
# SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the rows' fault.
_ROWS_FAILED = re.compile(r"\(SQLSTATE 2[23][0-9A-Z]{3}\)")
# PostgreSQL's messages that blame the scratch server, as pg_reason words them, and the advice.
_LIMITATIONS = [
    (
        re.compile(rf"ERROR: role {_NAME} does not exist \(SQLSTATE 42704\)"),
        "the scratch server has no role {name}: roles belong to a whole server, and the rehearsal creates none."
        ' Create it there as the target\'s server has it (CREATE ROLE "{quoted}" NOLOGIN), then rehearse again',
    ),
    (
        re.compile(rf"ERROR: role {_NAME} already exists \(SQLSTATE 42710\)"),
        "role {name} already exists on the scratch server: roles outlive the throwaway database, and another"
        " database or an earlier rehearsal's migrations made it. The file fails wherever the role exists",
    ),
    (
        re.compile(r"ERROR: permission denied to create role \(SQLSTATE 42501\)"),
        "the scratch server's role may not create roles: give it CREATEROLE there, as the target's migrating"
        " role has it, then rehearse again",
    ),
    (
        re.compile(rf"ERROR: permission denied to create extension {_NAME} \(SQLSTATE 42501\)"),
        "the scratch server's role may not create the extension {name}: rehearse with a role that may, as the"
        " target's migrating role may",
    ),
    (
        re.compile(rf"ERROR: extension {_NAME} is not available \(SQLSTATE 0A000\)"),
        "the scratch server does not have the extension {name} installed: extensions are installed per server."
        " Install it there (the version the target has), then rehearse again",
    ),
    (
        re.compile(rf"ERROR: .*? {_ROWS_FAILED.pattern}"),
        "the failure depends on rows, and the throwaway database holds only the rows the migrations themselves"
        " inserted, not the target's, which may fail it or pass it either way",
    ),
]


@dataclass(frozen=True)
class DownCheck:
    """A pending file's Down section, run once every pending file applied, newest first as a
    rollback runs them; then its Up again, oldest first, as a deployment after the rollback."""

    failure: Failure | None = None  # where Down stopped
    message: str | None = None  # the migrator's words for it (or the Down section's parse error)
    # The schema after Down against the one its Up started from (what Downs of later files left
    # is theirs): "missing" is what Down did not bring back, "unexpected" what it left behind,
    # "different" what it left changed.
    leftovers: Drift | None = None
    up_again_failure: Failure | None = None
    up_again_message: str | None = None
    not_checked: str | None = None  # why Down, or Up again, did not run

    @property
    def restores(self) -> bool:
        """Down brought back the schema Up started from, and Up applied again after it."""
        clean = self.leftovers is not None and not self.leftovers.found
        return clean and self.up_again_failure is None and self.not_checked is None


@dataclass(frozen=True)
class FileRehearsal:
    """One pending file, applied as a deployment would apply it."""

    migration: Migration
    transaction: bool
    seconds: float
    failure: Failure | None = None  # where Up stopped; None when it applied
    message: str | None = None  # the migrator's own words for the failure
    limitation: str | None = None  # when the scratch server or its rows, not the file, may be the cause
    locks: list[StatementLocks] = field(default_factory=list)  # only in a transaction
    down: DownCheck | None = None  # when Up applied and its Down could be tried

    @property
    def applied(self) -> bool:
        return self.failure is None

    @property
    def exclusive_locks(self) -> list[tuple[StatementLocks, RelationLock]]:
        """The ACCESS EXCLUSIVE locks this file takes on tables that existed before it."""
        return [(found, lock) for found in self.locks for lock in found.locks if lock.blocks_the_table]


@dataclass(frozen=True)
class Replay:
    """The target's applied versions, replayed on the scratch server."""

    replayed: list[int]  # in goose's applied order
    unreplayable: list[int]  # applied on the target, with no file here
    edited: list[str]  # replayed from a file edited since the target applied it
    failure: Failure | None = None  # where the replay stopped
    message: str | None = None
    limitation: str | None = None

    @property
    def complete(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class DriftCheck:
    """The live schema against the replay of its applied files, on a scratch server."""

    server: str  # the scratch server, ``dbname on host:port``
    database: str  # the throwaway database it made there, and dropped
    target_version: int  # PostgreSQL's server_version_num on each side
    scratch_version: int
    replay: Replay
    drift: Drift | None  # None when the replay did not complete
    roles_appeared: list[str]  # on the scratch server while its database existed; they stay there
    seconds: float  # to create the database, replay and compare

    @property
    def versions_differ(self) -> bool:
        """Different major versions may print a definition differently: drift then says less."""
        return self.target_version // 10000 != self.scratch_version // 10000


@dataclass(frozen=True)
class Rehearsal:
    """What the pending files would do to the target, learnt on a throwaway database."""

    base: DriftCheck  # the replay of the applied files, and the drift
    files: list[FileRehearsal]  # the pending files rehearsed, in order; a failing one last
    not_run: list[Migration]  # pending files after a failure (all of them when the replay failed)
    data_checks: list[DataCheck]
    seconds: float

    @property
    def failures(self) -> list[str]:
        """Why a deployment of the pending files would fail, as far as a rehearsal can tell."""
        found = [] if self.base.replay.message is None else [f"the replay failed: {self.base.replay.message}"]
        return found + self.pending_failures

    @property
    def pending_failures(self) -> list[str]:
        """The pending files that failed, and the target's rows that would fail them: what the
        files themselves would do, leaving out a replay of the applied files that failed."""
        found = [f.message or "" for f in self.files if not f.applied]
        return found + [str(check) for check in self.data_checks if check.verdict is Verdict.WOULD_FAIL]

    @property
    def passed(self) -> bool:
        return not self.failures


def rehearse(
    target: psycopg.Connection,
    scratch_dsn: str,
    migrations: list[Migration] | Path,
    table: TableName,
    *,
    options: Options | None = None,
    safety: Safety | None = None,
    env: Mapping[str, str] | None = None,
    up_to: int | None = None,
    exclude_schemas: Collection[str] = (),
    check_timeout: float = DEFAULT_TIMEOUT,
) -> Rehearsal:
    """Rehearse what ``up`` (or ``up-to up_to``) would apply to ``target`` (an autocommit
    session, only read) on a throwaway database of the server ``scratch_dsn`` reaches.

    Refuses as the deployment would (parse errors and planning's refusals: InputError); a
    scratch server it cannot use is a DatabaseError. A file that fails is no error: the result
    says where, as it says what the data checks predict."""
    started = time.perf_counter()
    rehearser = _Rehearser(target, migrations, table, options=options or Options(), safety=safety or Safety(), env=env)
    pending = rehearser.plan(up_to)
    checks = predict(target, pending, check_timeout)
    files: list[FileRehearsal] = []
    not_run = [step.migration for step in pending]
    with rehearser.replayed(scratch_dsn, exclude_schemas) as replayed:
        if replayed.replay.complete:
            files, not_run = rehearser.apply_pending(replayed.scratch, pending)
    files = [_with_target_rows(file, checks) for file in files]
    return Rehearsal(replayed.result(), files, not_run, checks, time.perf_counter() - started)


def _with_target_rows(file: FileRehearsal, checks: list[DataCheck]) -> FileRehearsal:
    """A file that failed on the replay's rows says so when the target's rows pass the same
    statement's data checks: production may well apply it (the rehearsal still fails, since
    nothing after that statement was rehearsed)."""
    failure = file.failure
    if failure is None or not _ROWS_FAILED.search(failure.reason):
        return file
    same = [c for c in checks if c.file == file.migration.filename and c.statement == failure.statement]
    if not same or any(check.verdict is not Verdict.PASSES for check in same):
        return file
    passing = "; ".join(f"{check.constraint} on {check.table}: {check.rows} {check.violation}" for check in same)
    return replace(file, limitation=f"{file.limitation}. The target's rows pass that statement's checks ({passing})")


def check_drift(
    target: psycopg.Connection,
    scratch_dsn: str,
    migrations: list[Migration] | Path,
    table: TableName,
    *,
    safety: Safety | None = None,
    env: Mapping[str, str] | None = None,
    exclude_schemas: Collection[str] = (),
) -> DriftCheck:
    """Replay what ``target`` (an autocommit session, only read) applied on a throwaway
    database of the server ``scratch_dsn`` reaches, and compare the two schemas."""
    rehearser = _Rehearser(target, migrations, table, options=Options(), safety=safety or Safety(), env=env)
    with rehearser.replayed(scratch_dsn, exclude_schemas) as replayed:
        pass
    return replayed.result()


@dataclass
class _Replayed:
    """The throwaway database once the applied files were replayed, and what that found."""

    scratch: ScratchDatabase
    target_version: int
    replay: Replay
    drift: Drift | None
    seconds: float  # to replay and compare

    def result(self) -> DriftCheck:
        """What the replay found; once the database is gone, with the roles that appeared meanwhile."""
        scratch = self.scratch
        return DriftCheck(
            scratch.server,
            scratch.name,
            self.target_version,
            scratch.server_version,
            self.replay,
            self.drift,
            scratch.roles_appeared,
            self.seconds,
        )


class _Rehearser:
    def __init__(
        self,
        target: psycopg.Connection,
        migrations: list[Migration] | Path,
        table: TableName,
        *,
        options: Options,
        safety: Safety,
        env: Mapping[str, str] | None,
    ):
        self.target = target
        self.table = table
        self.options = options
        self.safety = safety
        self.env = env
        self.migrator = Migrator(target, migrations, table, options=options, safety=safety, env=env)
        self._status: Status | None = None

    @property
    def status(self) -> Status:
        if self._status is None:
            # A role that may read goose's table but not the ledger still rehearses.
            self._status = self.migrator.status(tolerate_unreadable_ledger=True)
        return self._status

    def plan(self, up_to: int | None) -> list[Step]:
        """The pending files as the deployment plans them: parsed, refusals first."""
        return self.migrator.plan_up(target=up_to, status=self.status)

    @contextmanager
    def replayed(self, scratch_dsn: str, exclude_schemas: Collection[str]) -> Iterator[_Replayed]:
        """A throwaway database with the target's applied versions replayed, and the drift."""
        started = time.perf_counter()
        status = self.status
        files = {state.migration.version: state.migration for state in status.migrations}
        steps = [
            planning.parse_step(files[version], Direction.UP, self.env)
            for version in status.applied_order
            if version in files
        ]
        with throwaway_database(scratch_dsn) as scratch:
            self._prepare(scratch)
            failure, message, limitation = _apply(self._applier(scratch), steps)
            replayed = [step.migration.version for step in steps]
            if failure is not None:
                replayed = replayed[: replayed.index(_version_of(failure, steps))]
            replay = Replay(
                replayed,
                [version for version in status.applied_order if version not in files],
                [m.filename for m in status.edited],
                failure,
                message,
                limitation,
            )
            drift = self._drift(scratch, exclude_schemas) if replay.complete else None
            yield _Replayed(scratch, self.target.info.server_version, replay, drift, time.perf_counter() - started)

    def _prepare(self, scratch: ScratchDatabase) -> None:
        """The scratch session resolves unqualified names as the target's does, and holds goose's
        tables where a deployment's run finds them."""
        row = self.target.execute("SELECT current_setting('search_path'), current_user").fetchone()
        assert row is not None
        path, user = str(row[0]), str(row[1])
        # "$user" is the target's role, which the scratch server's role is not.
        path = path.replace('"$user"', sql.Identifier(user).as_string(scratch.conn))
        scratch.conn.execute(sql.SQL("SELECT set_config('search_path', {}, false)").format(sql.Literal(path)))
        if self.table.schema:
            scratch.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.table.schema)))
        Store(scratch.conn, self.table).ensure()
        Ledger(scratch.conn, self.table).ensure()

    def _applier(self, scratch: ScratchDatabase, observer: LockObserver | None = None) -> Applier:
        conn = scratch.conn
        session = own_session(conn, self.table)
        return Applier(
            conn,
            Store(conn, session.table),
            Ledger(conn, session.table),
            self.safety,
            lambda _: None,
            session=session,
            observe=observer,
        )

    def _drift(self, scratch: ScratchDatabase, exclude_schemas: Collection[str]) -> Drift:
        replay = take_snapshot(scratch.conn, self.table)
        schemas = compared_schemas(replay, scratch.fresh_schemas, exclude_schemas)
        live = take_snapshot(self.target, self.table, schemas)
        return compare(replay, live, schemas, scratch.fresh_schemas)

    def apply_pending(
        self, scratch: ScratchDatabase, pending: list[Step]
    ) -> tuple[list[FileRehearsal], list[Migration]]:
        """Each pending file in order until one fails, as a deployment runs them; then their
        Down sections and Up again (the files rehearsed, and those a failure left unrun)."""
        own = [name.identifier.as_string(scratch.conn) for name in own_tables(scratch.conn, self.table)]
        observer = LockObserver(scratch.conn, own)
        deploying = self._applier(scratch, observer)
        files: list[FileRehearsal] = []
        befores: list[tuple[Step, Snapshot]] = []
        for step in pending:
            before = take_snapshot(scratch.conn, self.table)
            observer.start()
            started = time.perf_counter()
            failure, message, limitation = _apply(deploying, [step])
            seconds = time.perf_counter() - started
            locks = observer.found if step.parsed.use_tx else []
            files.append(
                FileRehearsal(step.migration, step.parsed.use_tx, seconds, failure, message, limitation, locks)
            )
            if failure is not None:
                if failure.rolled_back:
                    files = self._with_down_checks(scratch, files, befores)
                return files, [s.migration for s in pending[len(files) :]]
            befores.append((step, before))
        return self._with_down_checks(scratch, files, befores), []

    def _with_down_checks(
        self, scratch: ScratchDatabase, files: list[FileRehearsal], befores: list[tuple[Step, Snapshot]]
    ) -> list[FileRehearsal]:
        """``files`` with the Down check of each file that applied (``befores``, in order)."""
        checking = self._applier(scratch)
        checks: dict[int, DownCheck] = {}
        stopped: str | None = None
        attributed: set[tuple[str, str]] = set()
        rolled_back: list[Step] = []
        for step, before in reversed(befores):
            version, name = step.migration.version, step.migration.filename
            if stopped is not None:
                checks[version] = DownCheck(not_checked=stopped)
                continue
            try:
                down = planning.parse_step(step.migration, Direction.DOWN, self.env)
            except ParseError as exc:
                checks[version], stopped = DownCheck(message=str(exc)), f"the Down section of {name} does not parse"
                continue
            failure, message, _ = _apply(checking, [down])
            if failure is not None:
                checks[version], stopped = DownCheck(failure, message), f"the Down section of {name} failed first"
                continue
            after = take_snapshot(scratch.conn, self.table)
            leftovers = compare(before, after, sorted(before.schemas | after.schemas)).without(attributed)
            attributed |= leftovers.keys()
            checks[version] = DownCheck(leftovers=leftovers)
            rolled_back.append(step)
        stopped = None
        for step in reversed(rolled_back):
            version = step.migration.version
            if stopped is not None:
                checks[version] = replace(checks[version], not_checked=stopped)
                continue
            failure, message, _ = _apply(checking, [step])
            if failure is not None:
                checks[version] = replace(checks[version], up_again_failure=failure, up_again_message=message)
                stopped = f"{step.migration.filename} did not apply again first"
        return [replace(found, down=checks.get(found.migration.version)) for found in files]


def _version_of(failure: Failure, steps: list[Step]) -> int:
    return next(step.migration.version for step in steps if step.migration.filename == failure.file)


def _apply(applier: Applier, steps: list[Step]) -> tuple[Failure | None, str | None, str | None]:
    """Apply the steps until one fails: where it failed, the migrator's words, and whether the
    scratch server may be the cause. An interruption (Ctrl-C, SIGTERM) is no failure of a file."""
    try:
        # Nothing else writes the throwaway database: the guard may read all of goose's table.
        applier.apply_all(steps, [], seen_up_to=0)
    except Interrupted:
        raise
    except MigrationFailed as exc:
        failed = exc
    else:
        return None, None, None
    failure = failed.failure
    assert failure is not None  # the applier always says where
    return failure, str(failed), limitation(failure.reason)


def limitation(reason: str) -> str | None:
    """When PostgreSQL's message (as the migrator words it) may be about the rehearsal's database
    rather than the file: roles and extensions belong to a whole server, not to the throwaway
    database, and its rows are the migrations' own, not the target's."""
    for pattern, advice in _LIMITATIONS:
        found = pattern.match(reason)
        if found is not None:
            quoted = found.groupdict().get("name") or ""
            return advice.format(name=quoted.replace('""', '"'), quoted=quoted)
    return None
