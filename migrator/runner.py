"""The migrator's commands against one database session, in goose's Provider's shape.

Writing commands hold goose's advisory lock, read the applied versions under it, plan
(planning.py, which refuses drift before anything changes), apply each step
(applying.py) and reseal the no-op shortcut (seal.py). Reading commands take no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

from migrator import planning
from migrator.applying import Applier
from migrator.errors import InputError
from migrator.history import Recording, RunRecorder
from migrator.interruptions import describe_interruption
from migrator.ledger import Ledger, State, checksums
from migrator.lock import migration_lock
from migrator.parser import Direction
from migrator.planning import Step
from migrator.safety import Safety
from migrator.seal import Seal
from migrator.source import Migration, collect
from migrator.status import Status, read_status
from migrator.store import Store, TableName


@dataclass(frozen=True)
class MigrationResult:
    """One file a command ran, as goose's Provider reports it."""

    version: int
    file: str
    direction: Direction
    seconds: float
    empty: bool


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.2f}s"


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
        self._seal = Seal(conn, self.store, self.ledger, self.directory)
        self._applier = Applier(conn, self.store, self.ledger, self.safety, out)

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
            self.store, self.ledger, self.migrations, tolerate_unreadable_ledger=tolerate_unreadable_ledger
        )

    def refuse_drift(self, status: Status, versions: set[int] | None = None) -> None:
        planning.refuse_drift(status, versions)

    def accept_edits(self, status: Status) -> list[Migration]:
        """Record the current checksum of every edited applied file: the edit is accepted."""
        if status.edited:
            self._record_checksums(status.edited)
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
        return planning.plan_up(
            status or self.status(),
            target=target,
            by_one=by_one,
            allow_missing=allow_missing,
            allow_edited=allow_edited,
            env=self.env,
        )

    def plan_down(
        self,
        *,
        target: int | None = None,
        reset: bool = False,
        allow_edited: bool = False,
        allow_interrupted: bool = False,
        status: Status | None = None,
    ) -> list[Step]:
        """The files ``down`` would roll back, in goose's order (see planning.plan_down)."""
        return planning.plan_down(
            status or self.status(),
            target=target,
            reset=reset,
            allow_edited=allow_edited,
            allow_interrupted=allow_interrupted,
            env=self.env,
        )

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
        sealed = self._seal.sealed_current()
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
        self._seal.reseal(self.status)
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
        if target is not None and target != 0 and target not in {m.version for m in self.migrations}:
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
            up = [planning.parse_step(step.migration, Direction.UP, self.env) for step in down]
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

    def _record_checksums(self, migrations: list[Migration]) -> None:
        """Record the files' current checksums as the ones they were applied with."""
        found = checksums(self.migrations, {m.version for m in migrations})
        self.conn.execute(
            sql.SQL("; ").join(
                self.ledger.put_sql(m.version, m.filename, found[m.version], State.APPLIED) for m in migrations
            )
        )

    def _execute(self, steps: list[Step], adopt: list[Migration] | None = None) -> int:
        """Run planned steps; every file was parsed by the planner before this point."""
        if self._recording is not None:
            self._recording.start()
        self.store.ensure()
        self.ledger.ensure()
        if adopt:
            self._record_checksums(adopt)
            self.out(f"migrator: recorded checksums of {len(adopt)} migration(s) applied before checksums existed")
        if not steps:
            current = self._current_version()
            self.out(f"migrator: no migrations to run. current version: {current}")
            return current
        for step in steps:
            started = time.perf_counter()
            self._applier.apply(step)
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
