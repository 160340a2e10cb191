"""The library's entry point: ``Migrator``, the commands against one database session.

Shaped like goose's Provider. Writing commands take the locker's lock, read the applied
versions under it, plan (planning.py, which refuses drift before anything changes),
apply each step (applying.py) and reseal the no-op shortcut (seal.py), then return a
RunResult; progress goes to ``on_event``. Reading commands take no lock. Nothing here
prints or reads the environment: the command line (commands.py) does both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

from migrator import planning
from migrator.applying import Applier
from migrator.errors import MigrationFailed
from migrator.events import (
    Ahead,
    ChecksumsAdopted,
    DatabaseAhead,
    EditAccepted,
    Event,
    InterruptedRunFound,
    MigrationResult,
    RunResult,
)
from migrator.history import History, Recording, RunRecorder
from migrator.ledger import Ledger
from migrator.ledger_entries import checksums
from migrator.lock import AdvisoryLocker, SessionLocker
from migrator.options import Options
from migrator.parser import Direction
from migrator.planning import Step
from migrator.safety import Safety
from migrator.seal import Seal
from migrator.server_session import writable_session
from migrator.source import Migration, collect
from migrator.status import Status, read_status
from migrator.store import Store, current_version
from migrator.table_name import TableName


@dataclass
class _Run:
    """One writing command under the lock: what applies its steps, its record in the run
    history, and what it did so far."""

    applier: Applier
    recording: Recording | None = None
    results: list[MigrationResult] = field(default_factory=list)
    accepted: list[Migration] = field(default_factory=list)


class Migrator:
    """Commands against one session. ``migrations`` is the files, or their directory: then
    they are listed only when needed, so a sealed no-op ``up`` never lists them. Writing
    commands wait up to ``lock_wait`` seconds for the locker's lock (goose's advisory lock
    unless ``locker`` says otherwise). ``manifest`` is a sha256sum listing of the files,
    as the image carries: when it lists exactly them, checksums come from it and a no-op
    ``up`` can be proved from a seal without listing a file. ``run_timeout`` is a budget in
    seconds for each writing command from the moment it holds the lock: no statement runs
    past it."""

    def __init__(
        self,
        conn: psycopg.Connection,
        migrations: list[Migration] | Path,
        table: TableName,
        *,
        options: Options | None = None,
        safety: Safety | None = None,
        locker: SessionLocker | None = None,
        manifest: str | None = None,
        env: Mapping[str, str] | None = None,
        recorder: RunRecorder | None = None,
        on_event: Callable[[Event], None] | None = None,
        run_timeout: float | None = None,
    ):
        self.conn = conn
        self.directory = migrations if isinstance(migrations, Path) else None
        self._given = None if isinstance(migrations, Path) else migrations
        self.options = options or Options()
        self.safety = safety or Safety()
        self.locker = locker or AdvisoryLocker()
        self.manifest = manifest
        self.env = env
        self.recorder = recorder
        self.notify = on_event or (lambda _: None)
        self.run_timeout = run_timeout
        self._use_table(table)

    def _use_table(self, table: TableName) -> None:
        self.store = Store(self.conn, table)
        self.ledger = Ledger(self.conn, table)
        self._seal = Seal(self.conn, self.store, self.ledger, self.directory, self.manifest)

    @cached_property
    def migrations(self) -> list[Migration]:
        if self._given is not None:
            return self._given
        assert self.directory is not None
        return collect(self.directory)

    # -- reading ---------------------------------------------------------------------

    def status(self, *, tolerate_unreadable_ledger: bool = False) -> Status:
        """The directory against the database. A read-only command may pass
        ``tolerate_unreadable_ledger``: without privileges on the ledger, checksums are then
        not compared and the status says why."""
        return read_status(
            self.store,
            self.ledger,
            self.migrations,
            self.manifest,
            tolerate_unreadable_ledger=tolerate_unreadable_ledger,
        )

    def plan_up(
        self, *, target: int | None = None, by_one: bool = False, status: Status | None = None, sql_only: bool = False
    ) -> list[Step]:
        """The files ``up`` would apply, parsed, in order; refuses out-of-order and edited files,
        and Go migrations (``sql_only``: leaves them out instead)."""
        status = status or self.status()
        return planning.plan_up(status, self.options, target=target, by_one=by_one, env=self.env, sql_only=sql_only)

    def plan_down(self, *, target: int | None = None, reset: bool = False, status: Status | None = None) -> list[Step]:
        """The files ``down`` would roll back, in goose's order (see planning.plan_down)."""
        return planning.plan_down(status or self.status(), self.options, target=target, reset=reset, env=self.env)

    # -- writing ---------------------------------------------------------------------

    def up(self, *, target: int | None = None, by_one: bool = False, lock_wait: float) -> RunResult:
        """Apply pending files: all, up to ``target``, or ``by_one`` the next one."""
        with self._locked(lock_wait) as run:
            return self._up(run, target, by_one=by_one)

    def _up(self, run: _Run, target: int | None, *, by_one: bool = False) -> RunResult:
        files = self._seal.files()  # before any file is read: see seal.py
        sealed = self._seal.sealed_current(files)
        if sealed is not None:
            return RunResult(sealed)
        status = self._status_for_writing(run)
        steps = self.plan_up(target=target, by_one=by_one, status=status)
        rerun = {step.migration.version for step in steps}
        for interrupted in status.interrupted:
            self.notify(InterruptedRunFound(interrupted, interrupted.version in rerun))
        if status.ahead:
            self.notify(DatabaseAhead(status.ahead, status.newest_file, Ahead.NEWER_IMAGE))
        result = self._execute(run, steps, adopt=status.unrecorded, ahead=status.ahead)
        # A run that changed nothing need not read every file again to know the status.
        unchanged = status if not (result.migrations or status.unrecorded or run.accepted) else None
        self._seal.reseal(files, self.status, unchanged=unchanged)
        return result

    def migrate_to(self, target: int | None, *, lock_wait: float, rollback_id: str | None = None) -> RunResult:
        """Move the database to exactly ``target`` (None: the newest file): ``up-to`` when the
        database is behind it, ``down-to`` when ahead, nothing when equal. Going down needs
        ``allow_down``, and happens once per ``rollback_id``: a rollback that completed before
        is not run again when the database moved on since. Without going down, versions above
        ``target`` stay applied and are reported (DatabaseAhead), as goose's up-to leaves them."""
        planning.refuse_unknown_target(target, self.migrations)
        with self._locked(lock_wait, rollback_id) as run:
            if target is None:
                return self._up(run, None)
            # The versions alone: a full status would also hash every applied file.
            applied = self.store.applied()
            highest = max(applied, default=0)
            if target > highest:
                return self._up(run, target)
            if target == highest:
                return RunResult(current_version(applied), already_at=target)
            above = sorted(v for v in applied if v > target)
            if not self.options.allow_down:
                return self._stay_ahead(applied, DatabaseAhead(above, target, Ahead.DOWN_NOT_ALLOWED))
            done = History(self.conn, self.store.table).rollback_completed(rollback_id) if rollback_id else None
            if done is not None:
                completed = DatabaseAhead(above, target, Ahead.ROLLBACK_DONE, rollback_id, done.finished_at)
                return self._stay_ahead(applied, completed)
            steps = self.plan_down(target=target, status=self._status_for_writing(run))
            return self._execute(run, steps)

    def _stay_ahead(self, applied: dict[int, datetime], ahead: DatabaseAhead) -> RunResult:
        """Nothing to do for the versions above the target, said so."""
        self.notify(ahead)
        return RunResult(current_version(applied), ahead=ahead.versions)

    def down(self, *, target: int | None = None, reset: bool = False, lock_wait: float) -> RunResult:
        """Roll back the most recently applied file, down to ``target``, or every one (``reset``)."""
        with self._locked(lock_wait) as run:
            steps = self.plan_down(target=target, reset=reset, status=self._status_for_writing(run))
            return self._execute(run, steps)

    def redo(self, *, lock_wait: float) -> RunResult:
        """Roll back the most recently applied file and apply it again."""
        with self._locked(lock_wait) as run:
            down = self.plan_down(status=self._status_for_writing(run))
            up = [planning.parse_step(step.migration, Direction.UP, self.env) for step in down]
            return self._execute(run, down + up)

    @contextmanager
    def _locked(self, lock_wait: float, rollback_id: str | None = None) -> Iterator[_Run]:
        """The locker's lock around a writing command, in a session of its own that may write
        (refused before anything is locked or set), and the run's record inside it. The
        session is given back as it was found."""
        session = writable_session(self.conn, self.store.table)
        self._use_table(session.table)
        applier = Applier(
            self.conn, self.store, self.ledger, self.safety, self.notify, session=session, run_timeout=self.run_timeout
        )
        run = _Run(applier)
        try:
            self.conn.execute(session.run_settings)
            self.locker.lock(self.conn, lock_wait)
            applier.start_clock()
            try:
                if self.recorder is None:
                    yield run
                    return
                applied = lambda: [r.version for r in run.results if r.direction is Direction.UP]  # noqa: E731
                with replace(self.recorder, table=session.table).around(
                    self.conn, applied, rollback_id, changed=lambda: bool(run.results)
                ) as recording:
                    run.recording = recording
                    yield run
            finally:
                self.locker.unlock(self.conn)
        finally:
            # A lost session has nothing left to give back; the original error matters more.
            with suppress(psycopg.Error):
                self.conn.execute(session.run_end)

    def _status_for_writing(self, run: _Run) -> Status:
        """The status a writing command plans from, after accepting edits when asked to."""
        status = self.status()
        if self.options.accept_edited and status.edited:
            self._record_checksums(status.edited)
            for migration in status.edited:
                self.notify(EditAccepted(migration))
            run.accepted = status.edited
            status = self.status()
        return status

    def _record_checksums(self, migrations: list[Migration]) -> None:
        """Record the files' current checksums as the ones they were applied with."""
        found = checksums(self.migrations, {m.version for m in migrations}, self.manifest)
        self.ledger.record_applied(migrations, found)

    def _execute(
        self, run: _Run, steps: list[Step], adopt: list[Migration] | None = None, ahead: list[int] | None = None
    ) -> RunResult:
        """Run planned steps; every file was parsed by the planner before this point."""
        if run.recording is not None:
            run.recording.start()
        self.store.ensure()
        self.ledger.ensure()
        # The seal speaks only for the run that wrote it: a NO TRANSACTION rollback that
        # stops half-way leaves goose's table as it was, and a seal left behind would let
        # the next `up` skip the check that reports it. `up` seals again when it completes.
        unsealed = self.conn.execute(sql.SQL("{}; {}").format(self.ledger.seal_sql(None), self.store.newest_id_sql()))
        unsealed.nextset()
        newest = unsealed.fetchone()
        assert newest is not None
        adopted = adopt or []
        if adopted:
            self._record_checksums(adopted)
            self.notify(ChecksumsAdopted(adopted))
        try:
            run.applier.apply_all(steps, run.results, seen_up_to=int(newest[0]))
        except MigrationFailed as failed:
            failed.applied = list(run.results)
            raise
        return RunResult(current_version(self.store.applied()), run.results, run.accepted, adopted, ahead=ahead or [])
