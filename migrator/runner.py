"""Planning and applying migrations against one database session.

Every file a command will run is parsed before anything is changed, so bad input never
leaves a database half migrated. Writing commands hold goose's advisory lock, read the
applied versions under it, and apply each file with its version row in one transaction
(unless the file says NO TRANSACTION).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

from migrator.errors import InputError, MigrationFailed
from migrator.lock import migration_lock
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.source import Migration
from migrator.store import Store, TableName


@dataclass(frozen=True)
class Step:
    migration: Migration
    direction: Direction
    parsed: ParsedMigration


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_at: datetime | None


@dataclass(frozen=True)
class Status:
    current: int
    migrations: list[MigrationState]
    unknown_applied: list[int]  # versions recorded in the table with no file

    @property
    def pending(self) -> list[Migration]:
        return [s.migration for s in self.migrations if s.applied_at is None]


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _pg_reason(exc: psycopg.Error) -> str:
    diag = exc.diag
    if diag.message_primary:
        reason = f"{diag.severity or 'ERROR'}: {diag.message_primary} (SQLSTATE {diag.sqlstate})"
        if diag.message_detail:
            reason += f" DETAIL: {diag.message_detail}"
        return " ".join(reason.split())
    return " ".join(str(exc).split()) or type(exc).__name__


class Runner:
    def __init__(
        self,
        conn: psycopg.Connection,
        migrations: list[Migration],
        table: TableName,
        *,
        env: Mapping[str, str] | None = None,
        out: Callable[[str], None] = print,
    ):
        self.conn = conn
        self.store = Store(conn, table)
        self.migrations = migrations
        self.by_version = {m.version: m for m in migrations}
        self.env = env
        self.out = out

    # -- reading ---------------------------------------------------------------------

    def status(self) -> Status:
        applied = self.store.applied()
        return Status(
            current=max(applied, default=0),
            migrations=[MigrationState(m, applied.get(m.version)) for m in self.migrations],
            unknown_applied=sorted(v for v in applied if v not in self.by_version),
        )

    def plan_up(self, *, target: int | None = None, by_one: bool = False, allow_missing: bool = False) -> list[Step]:
        """The files ``up`` would apply, parsed, in order; refuses out-of-order files."""
        status = self.status()
        pending = [m for m in status.pending if target is None or m.version <= target]
        missing = [m for m in pending if m.version < status.current]
        if missing and not allow_missing:
            names = ", ".join(m.filename for m in missing)
            raise InputError(
                f"{len(missing)} pending migration(s) older than the current version {status.current}:"
                f" {names}; apply them out of order with --allow-missing"
            )
        if by_one:
            pending = pending[:1]
        return [self._step(m, Direction.UP) for m in pending]

    def plan_down(self, *, target: int | None = None) -> list[Step]:
        """Roll back the newest applied version, or every version above ``target``."""
        applied = sorted(self.store.applied(), reverse=True)
        versions = applied[:1] if target is None else [v for v in applied if v > target]
        for version in versions:
            if version not in self.by_version:
                raise InputError(f"version {version} is applied but has no migration file to roll it back")
        return [self._step(self.by_version[v], Direction.DOWN) for v in versions]

    def _step(self, migration: Migration, direction: Direction) -> Step:
        return Step(migration, direction, parse_file(migration.path, direction, self.env))

    # -- writing ---------------------------------------------------------------------

    def up(
        self, *, target: int | None = None, by_one: bool = False, allow_missing: bool = False, lock_timeout: float
    ) -> int:
        with migration_lock(self.conn, lock_timeout):
            steps = self.plan_up(target=target, by_one=by_one, allow_missing=allow_missing)
            return self._execute(steps)

    def down(self, *, target: int | None = None, lock_timeout: float) -> int:
        with migration_lock(self.conn, lock_timeout):
            return self._execute(self.plan_down(target=target))

    def redo(self, *, lock_timeout: float) -> int:
        with migration_lock(self.conn, lock_timeout):
            down = self.plan_down()
            up = [self._step(step.migration, Direction.UP) for step in down]
            return self._execute(down + up)

    def _execute(self, steps: list[Step]) -> int:
        """Run planned steps; every file was parsed by the planner before this point."""
        self.store.ensure()
        if not steps:
            current = self.status().current
            self.out(f"migrator: no migrations to run. current version: {current}")
            return current
        for step in steps:
            started = time.perf_counter()
            self._apply(step)
            label = "OK  " if step.parsed.statements else "EMPTY"
            self.out(f"{label} {step.migration.filename} ({format_duration(time.perf_counter() - started)})")
        current = self.status().current
        self.out(f"migrator: successfully migrated database to version: {current}")
        return current

    def _apply(self, step: Step) -> None:
        if step.parsed.use_tx:
            self._apply_in_transaction(step)
        else:
            self._apply_without_transaction(step)

    def _track(self, step: Step) -> None:
        if step.direction is Direction.UP:
            self.store.record(step.migration.version)
        else:
            self.store.forget(step.migration.version)

    def _apply_in_transaction(self, step: Step) -> None:
        number = 0  # 0 while the version row is written
        try:
            with self.conn.transaction():
                for index, statement in enumerate(step.parsed.statements, start=1):
                    number = index
                    self.conn.execute(statement.sql)
                number = 0
                self._track(step)
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{self._where(step, number)} failed: {_pg_reason(exc)};"
                f" rolled back: nothing of this file was applied and version {step.migration.version}"
                f" was not {'recorded' if step.direction is Direction.UP else 'removed'}"
            ) from None

    def _apply_without_transaction(self, step: Step) -> None:
        for number, statement in enumerate(step.parsed.statements, start=1):
            try:
                self.conn.execute(statement.sql)
            except psycopg.Error as exc:
                ran = step.parsed.statements[: number - 1]
                done = (
                    "statements "
                    + ", ".join(f"{i} (line {s.line})" for i, s in enumerate(ran, start=1))
                    + " ran and were NOT rolled back"
                    if ran
                    else "no statement of it had run"
                )
                raise MigrationFailed(
                    f"{self._where(step, number)} failed in a NO TRANSACTION migration: {_pg_reason(exc)};"
                    f" {done}; version {step.migration.version} was not"
                    f" {'recorded' if step.direction is Direction.UP else 'removed'}."
                    " Repair by hand, then rerun"
                ) from None
        try:
            self._track(step)
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{step.migration.filename}: all statements ran but the version row could not be written:"
                f" {_pg_reason(exc)}"
            ) from None

    @staticmethod
    def _where(step: Step, number: int) -> str:
        name = f"{step.migration.filename} ({step.direction.value})"
        if number == 0:
            return f"{name}: recording the version"
        return f"{name}: statement {number} (line {step.parsed.statements[number - 1].line})"
