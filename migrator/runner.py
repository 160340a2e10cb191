"""Planning and applying migrations against one database session.

Every file a command will run is parsed before anything is changed, so bad input never
leaves a database half migrated. Writing commands hold goose's advisory lock, read the
applied versions under it, refuse to go on over an applied file that was edited or
removed, and apply each file with its version row in one transaction (unless the file
says NO TRANSACTION) under a short ``lock_timeout``, retrying a file that a lock blocked.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from itertools import takewhile
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.errors import Failure, InputError, Interrupted, MigrationFailed
from migrator.history import Recording, RunRecorder
from migrator.ledger import Entry, Ledger, LedgerUnreadable, State, checksums, manifest_names, manifest_text
from migrator.lock import migration_lock
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.pg_reasons import blocked_relation, pg_reason
from migrator.safety import Safety
from migrator.source import Migration, collect
from migrator.store import Store, TableName


@dataclass(frozen=True)
class Step:
    migration: Migration
    direction: Direction
    parsed: ParsedMigration

    @property
    def tracking(self) -> str:
        """What finishing the step does to its version row, for messages."""
        return "recorded" if self.direction is Direction.UP else "removed"


@dataclass(frozen=True)
class MigrationResult:
    """One file a command ran, as goose's Provider reports it."""

    version: int
    file: str
    direction: Direction
    seconds: float
    empty: bool


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied: bool
    applied_at: datetime | None  # None when not applied, or when times were not read


@dataclass(frozen=True)
class Status:
    current: int  # goose's current version: the most recently applied one, by the table's ids
    migrations: list[MigrationState]
    unknown_applied: list[int]  # versions recorded in the table with no file
    edited: list[Migration] = field(default_factory=list)  # applied, and the file changed since
    vanished: list[Entry] = field(default_factory=list)  # applied with a checksum, file gone
    interrupted: list[Entry] = field(default_factory=list)  # NO TRANSACTION run that died part-way
    unrecorded: list[Migration] = field(default_factory=list)  # applied before checksums existed
    applied_order: list[int] = field(default_factory=list)  # applied versions, oldest application first
    ledger_unreadable: str | None = None  # why checksums could not be compared, in a read-only command

    @property
    def pending(self) -> list[Migration]:
        return [s.migration for s in self.migrations if not s.applied]

    @property
    def highest(self) -> int:
        return max(self.applied_order, default=0)


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.2f}s"


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


def _statements_that_ran(step: Step, stopped_at: int) -> str:
    ran = step.parsed.statements[: stopped_at - 1]
    if not ran:
        return "no statement of it had run"
    listed = ", ".join(f"{i} (line {s.line})" for i, s in enumerate(ran, start=1))
    return f"statements {listed} ran and were NOT rolled back"


class _Blocked(Exception):
    """A transactional file hit lock_timeout; it was rolled back and may be retried."""

    def __init__(self, number: int, cause: psycopg.Error):
        super().__init__(str(cause))
        self.number = number
        self.cause = cause


class Runner:
    """Commands against one session. ``migrations`` is the files, or their directory: then
    they are listed only when needed, so a sealed no-op ``up`` never lists them."""

    def __init__(
        self,
        conn: psycopg.Connection,
        migrations: list[Migration] | Path,
        table: TableName,
        *,
        env: Mapping[str, str] | None = None,
        out: Callable[[str], None] = print,
        safety: Safety | None = None,
        recorder: RunRecorder | None = None,
    ):
        self.conn = conn
        self.store = Store(conn, table)
        self.ledger = Ledger(conn, table)
        self.directory = migrations if isinstance(migrations, Path) else None
        self._given = None if isinstance(migrations, Path) else migrations
        self.env = env
        self.out = out
        self.safety = safety or Safety()
        self.results: list[MigrationResult] = []  # what this runner's commands ran, in order
        self.recorder = recorder
        self._recording: Recording | None = None

    @cached_property
    def migrations(self) -> list[Migration]:
        if self._given is not None:
            return self._given
        assert self.directory is not None
        return collect(self.directory)

    @cached_property
    def by_version(self) -> dict[int, Migration]:
        return {m.version: m for m in self.migrations}

    def _state_digest(self) -> tuple[str, int] | None:
        """Digest of everything a no-op ``up`` depends on, and the current version; None
        unless the image's checksum manifest lists exactly the directory's files."""
        text = manifest_text()
        if text is None or self.directory is None or sorted(os.listdir(self.directory)) != manifest_names(text):
            return None
        rows, highest = self.store.digest()
        state = f"{self.store.table}\0{rows}\0{text}"
        return hashlib.sha256(state.encode()).hexdigest(), highest

    def _sealed_current(self) -> int | None:
        """The current version if the last complete run sealed exactly this state."""
        found = self._state_digest()
        if found is None or found[0] != self.ledger.seal():
            return None
        return found[1]

    def _reseal(self) -> None:
        """Seal the state when nothing is left to do: every file applied, none changed."""
        found = self._state_digest()
        if found is None:
            return
        status = self.status()
        complete = not (status.pending or status.edited or status.vanished or status.interrupted)
        sealed = found[0] if complete and status.highest == found[1] else None
        self.conn.execute(self.ledger.seal_sql(sealed))

    # -- reading ---------------------------------------------------------------------

    def status(self, *, tolerate_unreadable_ledger: bool = False) -> Status:
        """The directory against the database. A read-only command may pass
        ``tolerate_unreadable_ledger``: without privileges on the ledger, checksums are then
        not compared and the status says why."""
        times = self.store.applied()
        try:
            entries, unreadable = self.ledger.entries(), None
        except LedgerUnreadable as exc:
            if not tolerate_unreadable_ledger:
                raise
            entries, unreadable = {}, f"{exc}: edited files and interrupted runs are not detected"
        recorded = {v for v in times if v in entries and entries[v].state is State.APPLIED}
        on_disk = checksums(self.migrations, recorded)
        return Status(
            current=next(reversed(times), 0),
            migrations=[MigrationState(m, m.version in times, times.get(m.version)) for m in self.migrations],
            unknown_applied=sorted(v for v in times if v not in self.by_version),
            edited=[self.by_version[v] for v in sorted(on_disk) if on_disk[v] != entries[v].sha256],
            vanished=[entries[v] for v in sorted(recorded) if v not in self.by_version],
            interrupted=[e for _, e in sorted(entries.items()) if e.state is not State.APPLIED],
            unrecorded=[self.by_version[v] for v in sorted(times) if v not in entries and v in self.by_version]
            if unreadable is None
            else [],
            applied_order=list(times),
            ledger_unreadable=unreadable,
        )

    def refuse_drift(self, status: Status, versions: set[int] | None = None) -> None:
        """InputError naming every applied file (of ``versions``, or all) that was edited or is gone."""
        edited = [m for m in status.edited if versions is None or m.version in versions]
        vanished = [e for e in status.vanished if versions is None or e.version in versions]
        problems = [f"{m.filename} was edited after it was applied" for m in edited]
        problems += [f"{e.filename} (version {e.version}) was applied but its file is gone" for e in vanished]
        if problems:
            raise InputError(
                "; ".join(problems) + ". Restore the applied file(s); or pass --allow-edited to go on this once"
                " (the edit is reported again next time), or --accept-edited to record the edited file's"
                " checksum as the applied one"
            )

    def accept_edits(self, status: Status) -> list[Migration]:
        """Record the current checksum of every edited applied file: the edit is accepted."""
        if status.edited:
            found = checksums(self.migrations, {m.version for m in status.edited})
            self.conn.execute(
                sql.SQL("; ").join(
                    self.ledger.put_sql(m.version, m.filename, found[m.version], State.APPLIED) for m in status.edited
                )
            )
            for migration in status.edited:
                self.out(f"migrator: accepted the edit of {migration.filename}: its new checksum is recorded")
        return status.edited

    def plan_up(
        self,
        *,
        target: int | None = None,
        by_one: bool = False,
        allow_missing: bool = False,
        allow_edited: bool = False,
        status: Status | None = None,
    ) -> list[Step]:
        """The files ``up`` would apply, parsed, in order; refuses out-of-order and edited files."""
        status = status or self.status()
        if not allow_edited:
            self.refuse_drift(status)
        pending = [m for m in status.pending if target is None or m.version <= target]
        missing = [m for m in pending if m.version < status.highest]
        if missing and not allow_missing:
            names = ", ".join(m.filename for m in missing)
            raise InputError(
                f"{len(missing)} pending migration(s) older than the highest applied version {status.highest}:"
                f" {names}; apply them out of order with --allow-missing"
            )
        if by_one:
            pending = pending[:1]
        return [self._step(m, Direction.UP) for m in pending]

    def plan_down(
        self,
        *,
        target: int | None = None,
        reset: bool = False,
        allow_edited: bool = False,
        allow_interrupted: bool = False,
        status: Status | None = None,
    ) -> list[Step]:
        """The files ``down`` would roll back, in goose's order: ``down`` and ``down-to``
        walk back from the most recently applied version (by the table's ids) and stop at
        the first at or below ``target``; ``reset`` takes every applied version, highest
        first, as goose's ``reset`` does."""
        status = status or self.status()
        latest_first = list(reversed(status.applied_order))
        if reset:
            versions = sorted(latest_first, reverse=True)
        elif target is None:
            versions = latest_first[:1]
        else:
            versions = list(takewhile(lambda v: v > target, latest_first))
        for version in versions:
            if version not in self.by_version:
                raise InputError(f"version {version} is applied but has no migration file to roll it back")
        stray = [e for e in status.interrupted if not (e.state is State.REVERTING and e.version in versions)]
        if stray and not allow_interrupted:
            raise InputError(
                "; ".join(interruption_advice(e) for e in stray)
                + ". Rolling back other files first would leave it half done: finish it, or pass"
                " --allow-interrupted to roll back anyway"
            )
        if not allow_edited:
            self.refuse_drift(status, set(versions))
        return [self._step(self.by_version[v], Direction.DOWN) for v in versions]

    def _step(self, migration: Migration, direction: Direction) -> Step:
        return Step(migration, direction, parse_file(migration.path, direction, self.env))

    # -- writing ---------------------------------------------------------------------

    def up(
        self,
        *,
        target: int | None = None,
        by_one: bool = False,
        allow_missing: bool = False,
        allow_edited: bool = False,
        accept_edited: bool = False,
        lock_timeout: float,
    ) -> int:
        with self._locked(lock_timeout):
            return self._up(target, by_one, allow_missing, allow_edited, accept_edited)

    def _up(
        self, target: int | None, by_one: bool, allow_missing: bool, allow_edited: bool, accept_edited: bool
    ) -> int:
        sealed = self._sealed_current()
        if sealed is not None:
            self.out(f"migrator: no migrations to run. current version: {sealed}")
            return sealed
        status = self._status_for_writing(accept_edited)
        steps = self.plan_up(
            target=target, by_one=by_one, allow_missing=allow_missing, allow_edited=allow_edited, status=status
        )
        rerun = {step.migration.version for step in steps}
        for entry in status.interrupted:
            what = "running it again from the start" if entry.version in rerun else "see status"
            self.out(f"migrator: {describe_interruption(entry)}; {what}")
        current = self._execute(steps, adopt=status.unrecorded)
        self._reseal()
        return current

    def migrate_to(
        self,
        target: int | None,
        *,
        allow_down: bool = False,
        allow_missing: bool = False,
        allow_edited: bool = False,
        accept_edited: bool = False,
        allow_interrupted: bool = False,
        lock_timeout: float,
    ) -> int:
        """Move the database to exactly ``target`` (None: the newest file): ``up-to`` when the
        database is behind it, ``down-to`` (only with ``allow_down``) when ahead, nothing when equal."""
        if target is not None and target != 0 and target not in self.by_version:
            raise InputError(
                f"migrate-to: no migration file has version {target}: it is not one of this directory's"
                " (or this image's) versions"
            )
        with self._locked(lock_timeout):
            if target is None:
                return self._up(None, False, allow_missing, allow_edited, accept_edited)
            # The versions alone: a full status would also hash every applied file.
            highest = max(self.store.applied(), default=0)
            if target > highest:
                return self._up(target, False, allow_missing, allow_edited, accept_edited)
            if target == highest:
                self.out(f"migrator: already at version {target}; nothing to do")
                return self._current_version()
            status = self._status_for_writing(accept_edited)
            steps = self.plan_down(
                target=target, allow_edited=allow_edited, allow_interrupted=allow_interrupted, status=status
            )
            if not allow_down:
                names = ", ".join(step.migration.filename for step in steps)
                raise InputError(
                    f"migrate-to {target} would roll back {names or 'nothing (see status)'}; going down needs"
                    " --allow-down (the stack setting allowDown)"
                )
            return self._execute(steps)

    def down(
        self,
        *,
        target: int | None = None,
        reset: bool = False,
        allow_edited: bool = False,
        accept_edited: bool = False,
        allow_interrupted: bool = False,
        lock_timeout: float,
    ) -> int:
        with self._locked(lock_timeout):
            status = self._status_for_writing(accept_edited)
            steps = self.plan_down(
                target=target,
                reset=reset,
                allow_edited=allow_edited,
                allow_interrupted=allow_interrupted,
                status=status,
            )
            return self._execute(steps)

    def redo(
        self,
        *,
        allow_edited: bool = False,
        accept_edited: bool = False,
        allow_interrupted: bool = False,
        lock_timeout: float,
    ) -> int:
        with self._locked(lock_timeout):
            status = self._status_for_writing(accept_edited)
            down = self.plan_down(allow_edited=allow_edited, allow_interrupted=allow_interrupted, status=status)
            up = [self._step(step.migration, Direction.UP) for step in down]
            return self._execute(down + up)

    @contextmanager
    def _locked(self, lock_timeout: float) -> Iterator[None]:
        """goose's lock around a writing command, and the run's record inside it."""
        with migration_lock(self.conn, lock_timeout):
            if self.recorder is None:
                yield
                return
            applied = lambda: [r.version for r in self.results if r.direction is Direction.UP]  # noqa: E731
            with self.recorder.around(self.conn, applied) as recording:
                self._recording = recording
                try:
                    yield
                finally:
                    self._recording = None

    def _status_for_writing(self, accept_edited: bool) -> Status:
        status = self.status()
        if accept_edited and self.accept_edits(status):
            status = self.status()
        return status

    def _execute(self, steps: list[Step], adopt: list[Migration] | None = None) -> int:
        """Run planned steps; every file was parsed by the planner before this point."""
        if self._recording is not None:
            self._recording.start()
        self.store.ensure()
        self.ledger.ensure()
        if adopt:
            found = checksums(self.migrations, {m.version for m in adopt})
            self.conn.execute(
                sql.SQL("; ").join(
                    self.ledger.put_sql(m.version, m.filename, found[m.version], State.APPLIED) for m in adopt
                )
            )
            self.out(f"migrator: recorded checksums of {len(adopt)} migration(s) applied before checksums existed")
        if not steps:
            current = self._current_version()
            self.out(f"migrator: no migrations to run. current version: {current}")
            return current
        for step in steps:
            started = time.perf_counter()
            self._apply(step)
            seconds = time.perf_counter() - started
            empty = not step.parsed.statements
            self.results.append(
                MigrationResult(step.migration.version, step.migration.filename, step.direction, seconds, empty)
            )
            self.out(f"{'EMPTY' if empty else 'OK  '} {step.migration.filename} ({format_duration(seconds)})")
        current = self._current_version()
        self.out(f"migrator: successfully migrated database to version: {current}")
        return current

    def _current_version(self) -> int:
        return next(reversed(self.store.applied()), 0)

    def _apply(self, step: Step) -> None:
        if step.parsed.use_tx:
            self._apply_in_transaction(step)
        else:
            self._apply_without_transaction(step)

    def _tracking(self, step: Step) -> sql.Composed:
        """The version row and the ledger entry of a finished step, as one statement list."""
        migration = step.migration
        if step.direction is Direction.UP:
            rows = [
                self.store.record_sql(migration.version),
                self.ledger.put_sql(migration.version, migration.filename, step.parsed.sha256, State.APPLIED),
            ]
        else:
            rows = [self.store.forget_sql(migration.version), self.ledger.remove_sql(migration.version)]
        return sql.SQL("; ").join(rows)

    def _apply_in_transaction(self, step: Step) -> None:
        backoff = self.safety.first_backoff
        for attempt in range(1, self.safety.lock_retries + 2):
            try:
                self._attempt_in_transaction(step)
                return
            except _Blocked as blocked:
                if attempt > self.safety.lock_retries:
                    relation = blocked_relation(blocked.cause)
                    on = f" on {relation}" if relation else ""
                    raise MigrationFailed(
                        f"{self._where(step, blocked.number)} was blocked by a lock{on}: it waited longer than"
                        f" lock_timeout ({self.safety.lock_timeout:g}s) {attempt} time(s). Rolled back: nothing of"
                        " this file was applied. Find the blocking sessions with pg_blocking_pids(), then rerun",
                        self._failure(step, blocked.number, pg_reason(blocked.cause), rolled_back=True),
                    ) from None
                self.out(
                    f"migrator: {self._where(step, blocked.number)} blocked by a lock (attempt {attempt} of"
                    f" {self.safety.lock_retries + 1}); rolled back, retrying in {backoff:g}s"
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, self.safety.max_backoff)

    def _attempt_in_transaction(self, step: Step) -> None:
        # BEGIN and the timeouts travel with the first statement, the version rows with
        # COMMIT: one round trip per statement and one more per file, where psql needs three
        # more. A failure still names its statement: BEGIN and SET do not fail.
        number = 0  # 0 while the version row is written
        cursor = self.conn.cursor()
        opening = f"BEGIN; {self.safety.set_statements(local=True)}"
        try:
            if not step.parsed.statements:
                cursor.execute(opening)
            for index, statement in enumerate(step.parsed.statements, start=1):
                number = index
                cursor.execute(f"{opening}; {statement.sql}" if index == 1 else statement.sql)
            number = 0
            cursor.execute(sql.SQL("{}; COMMIT").format(self._tracking(step)))
        except KeyboardInterrupt:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise Interrupted(
                f"{self._where(step, number)} was interrupted; rolled back: nothing of this file was applied"
                f" and version {step.migration.version} was not {step.tracking}",
                self._failure(step, number, "interrupted", rolled_back=True),
            ) from None
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            if isinstance(exc, pg_errors.LockNotAvailable):
                raise _Blocked(number, exc) from None
            raise MigrationFailed(
                f"{self._where(step, number)} failed: {pg_reason(exc)};"
                f" rolled back: nothing of this file was applied and version {step.migration.version}"
                f" was not {step.tracking}",
                self._failure(step, number, pg_reason(exc), rolled_back=True),
            ) from None

    def _apply_without_transaction(self, step: Step) -> None:
        migration, statements = step.migration, step.parsed.statements
        state = State.APPLYING if step.direction is Direction.UP else State.REVERTING
        try:
            ledger_entry = self.ledger.put_sql(
                migration.version, migration.filename, step.parsed.sha256, state, len(statements)
            )
            self.conn.execute(sql.SQL("{}; {}").format(ledger_entry, sql.SQL(self.safety.set_statements(local=False))))
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{migration.filename}: preparing the run failed: {pg_reason(exc)}",
                self._failure(step, 0, pg_reason(exc), rolled_back=True),
            ) from None
        for number, statement in enumerate(statements, start=1):
            try:
                self.conn.execute(statement.sql)
                self.ledger.progress(migration.version, number)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"{self._where(step, number)} was interrupted in a NO TRANSACTION migration;"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " `status` shows it; repair by hand, then rerun",
                    self._failure(step, number, "interrupted", rolled_back=number == 1),
                ) from None
            except psycopg.Error as exc:
                raise MigrationFailed(
                    f"{self._where(step, number)} failed in a NO TRANSACTION migration: {pg_reason(exc)};"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " Repair by hand, then rerun",
                    self._failure(step, number, pg_reason(exc), rolled_back=number == 1),
                ) from None
        try:
            # One simple query is one implicit transaction: both rows or neither.
            self.conn.execute(sql.SQL("RESET lock_timeout; RESET statement_timeout; {}").format(self._tracking(step)))
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{migration.filename}: all statements ran but the version row could not be written: {pg_reason(exc)}",
                self._failure(step, 0, pg_reason(exc), rolled_back=not statements),
            ) from None

    @staticmethod
    def _failure(step: Step, number: int, reason: str, *, rolled_back: bool) -> Failure:
        line = step.parsed.statements[number - 1].line if number else None
        return Failure(step.migration.filename, step.direction.value, number or None, line, reason, rolled_back)

    @staticmethod
    def _where(step: Step, number: int) -> str:
        name = f"{step.migration.filename} ({step.direction.value})"
        if number == 0:
            return f"{name}: recording the version"
        return f"{name}: statement {number} (line {step.parsed.statements[number - 1].line})"
