"""Applying planned steps, and the facts of where one stopped when it fails.

A file runs with its version row in one transaction under ``SET LOCAL`` timeouts; one
that PostgreSQL's ``lock_timeout`` stopped is rolled back and retried with doubling
backoff. A NO TRANSACTION file runs statement by statement, its progress recorded in the
ledger after each one, so a run that dies part-way says how far it got. With a budget for
the whole run (``--run-timeout``), each statement's ``statement_timeout`` is the smaller of
its own and what is left, and no statement starts once nothing is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from migrator.durations import MIN_SECONDS, milliseconds
from migrator.errors import Failure, Interrupted, MigrationFailed
from migrator.events import Event, LockRetry, MigrationFinished, MigrationResult
from migrator.ledger import Ledger, State
from migrator.parser import Direction
from migrator.pg_reasons import blocked_relation, pg_reason
from migrator.planning import Step
from migrator.safety import Safety
from migrator.store import Store


class _Blocked(Exception):
    """A transactional file hit lock_timeout; it was rolled back and may be retried."""

    def __init__(self, number: int, cause: psycopg.Error):
        self.number = number
        self.cause = cause


class _OutOfTime(Exception):
    """The run's budget is spent: statement ``number`` of the file must not start."""

    def __init__(self, number: int):
        self.number = number


def _statements_that_ran(step: Step, stopped_at: int) -> str:
    ran = step.parsed.statements[: stopped_at - 1]
    if not ran:
        return "no statement of it had run"
    listed = ", ".join(f"{i} (line {s.line})" for i, s in enumerate(ran, start=1))
    if len(ran) == 1:
        return f"statement {listed} ran and was NOT rolled back"
    return f"statements {listed} ran and were NOT rolled back"


def _failure(step: Step, number: int, reason: str, *, rolled_back: bool) -> Failure:
    line = step.parsed.statements[number - 1].line if number else None
    return Failure(step.migration.filename, step.direction.value, number or None, line, reason, rolled_back)


class Applier:
    """Applies steps on one session, writing goose's version row and the ledger's entry."""

    def __init__(
        self,
        conn: psycopg.Connection,
        store: Store,
        ledger: Ledger,
        safety: Safety,
        notify: Callable[[Event], None],
        *,
        run_timeout: float | None = None,
    ):
        self.conn = conn
        self.store = store
        self.ledger = ledger
        self.safety = safety
        self.notify = notify
        self.run_timeout = run_timeout
        self.deadline: float | None = None  # time.monotonic() when the budget is spent
        self._budget_bound = False  # the running statement's timeout is what is left of the budget

    def start_clock(self) -> None:
        """The run's budget starts now (once it holds the lock)."""
        self.deadline = None if self.run_timeout is None else time.monotonic() + self.run_timeout

    def _timeouts(self, number: int) -> Safety:
        """The timeouts statement ``number`` starts under; _OutOfTime when the budget is spent."""
        self._budget_bound = False
        if self.deadline is None:
            return self.safety
        left = self.deadline - time.monotonic()
        if left < MIN_SECONDS:
            raise _OutOfTime(number)
        self._budget_bound = left < self.safety.statement_timeout
        return replace(self.safety, statement_timeout=min(left, self.safety.statement_timeout))

    def _set_statement_timeout(self, number: int, *, local: bool) -> str:
        """Another statement's budget, sent with it: nothing without a budget."""
        if self.deadline is None:
            return ""
        seconds = self._timeouts(number).statement_timeout
        return f"SET {'LOCAL ' if local else ''}statement_timeout = '{milliseconds(seconds)}ms'"

    def _reason(self, exc: psycopg.Error) -> str:
        reason = pg_reason(exc)
        if self._budget_bound and isinstance(exc, pg_errors.QueryCanceled):
            reason += f" (the statement had what was left of the run's budget, --run-timeout {self.run_timeout:g}s)"
        return reason

    def _out_of_time(self, step: Step, number: int, what: str, *, rolled_back: bool = True) -> MigrationFailed:
        reason = f"the run's budget (--run-timeout {self.run_timeout:g}s) was spent"
        return MigrationFailed(
            f"{step.where(number)} was not started: {reason}; {what}",
            _failure(step, number, reason, rolled_back=rolled_back),
        )

    def apply_all(self, steps: list[Step], results: list[MigrationResult]) -> None:
        """Apply the steps in order, adding each finished one to ``results`` as it finishes."""
        for step in steps:
            started = time.perf_counter()
            if step.parsed.use_tx:
                self._apply_in_transaction(step)
            else:
                self._apply_without_transaction(step)
            migration = step.migration
            result = MigrationResult(
                migration.version,
                migration.filename,
                step.direction,
                time.perf_counter() - started,
                not step.parsed.statements,
            )
            results.append(result)
            self.notify(MigrationFinished(result))

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
                        f"{step.where(blocked.number)} was blocked by a lock{on}: it waited longer than"
                        f" lock_timeout ({self.safety.lock_timeout:g}s) {attempt} time(s). Rolled back: nothing of"
                        " this file was applied. Find the blocking sessions with pg_blocking_pids(), then rerun",
                        _failure(step, blocked.number, pg_reason(blocked.cause), rolled_back=True),
                    ) from None
                self.notify(LockRetry(step, blocked.number, attempt, self.safety.lock_retries + 1, backoff))
                # No backoff past the budget: the next attempt then finds it spent.
                left = backoff if self.deadline is None else max(0.0, self.deadline - time.monotonic())
                time.sleep(min(backoff, left))
                backoff = min(backoff * 2, self.safety.max_backoff)

    def _attempt_in_transaction(self, step: Step) -> None:
        # BEGIN and the timeouts travel with the first statement, the version rows with
        # COMMIT: one round trip per statement and one more per file, where psql needs three
        # more. A failure still names its statement: BEGIN and SET do not fail.
        number = 0  # 0 while the version row is written
        cursor = self.conn.cursor()
        try:
            opening = f"BEGIN; {self._timeouts(1 if step.parsed.statements else 0).set_statements(local=True)}"
        except _OutOfTime as spent:
            raise self._out_of_time(
                step,
                spent.number,
                f"nothing of this file was applied and version {step.migration.version} was not {step.tracking}",
            ) from None
        try:
            if not step.parsed.statements:
                cursor.execute(opening)
            for index, statement in enumerate(step.parsed.statements, start=1):
                number = index
                if index == 1:
                    cursor.execute(f"{opening}; {statement.sql}")
                else:
                    budget = self._set_statement_timeout(index, local=True)
                    cursor.execute(f"{budget}; {statement.sql}" if budget else statement.sql)
            number = 0
            cursor.execute(sql.SQL("{}; COMMIT").format(self._tracking(step)))
        except KeyboardInterrupt:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise Interrupted(
                f"{step.where(number)} was interrupted; rolled back: nothing of this file was applied"
                f" and version {step.migration.version} was not {step.tracking}",
                _failure(step, number, "interrupted", rolled_back=True),
            ) from None
        except _OutOfTime as spent:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise self._out_of_time(
                step,
                spent.number,
                f"rolled back: nothing of this file was applied and version"
                f" {step.migration.version} was not {step.tracking}",
            ) from None
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            if isinstance(exc, pg_errors.LockNotAvailable):
                raise _Blocked(number, exc) from None
            reason = self._reason(exc)
            raise MigrationFailed(
                f"{step.where(number)} failed: {reason};"
                f" rolled back: nothing of this file was applied and version {step.migration.version}"
                f" was not {step.tracking}",
                _failure(step, number, reason, rolled_back=True),
            ) from None

    def _apply_without_transaction(self, step: Step) -> None:
        migration, statements = step.migration, step.parsed.statements
        state = State.APPLYING if step.direction is Direction.UP else State.REVERTING
        try:
            timeouts = self._timeouts(1 if statements else 0)
        except _OutOfTime as spent:
            raise self._out_of_time(
                step, spent.number, f"nothing of this file ran and version {migration.version} was not {step.tracking}"
            ) from None
        try:
            ledger_entry = self.ledger.put_sql(
                migration.version, migration.filename, step.parsed.sha256, state, len(statements)
            )
            self.conn.execute(sql.SQL("{}; {}").format(ledger_entry, sql.SQL(timeouts.set_statements(local=False))))
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{migration.filename}: preparing the run failed: {pg_reason(exc)}",
                _failure(step, 0, pg_reason(exc), rolled_back=True),
            ) from None
        for number, statement in enumerate(statements, start=1):
            try:
                self.conn.execute(statement.sql)
                # The next statement's budget travels with this one's progress, which is
                # recorded even when the budget is spent.
                following, stop = "", None
                if number < len(statements):
                    try:
                        following = self._set_statement_timeout(number + 1, local=False)
                    except _OutOfTime as exc:
                        stop = exc
                progress = self.ledger.progress_sql(migration.version, number)
                self.conn.execute(sql.SQL("{}; {}").format(progress, sql.SQL(following)) if following else progress)
                if stop is not None:
                    raise stop
            except KeyboardInterrupt:
                raise Interrupted(
                    f"{step.where(number)} was interrupted in a NO TRANSACTION migration;"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " `status` shows it; repair by hand, then rerun",
                    _failure(step, number, "interrupted", rolled_back=number == 1),
                ) from None
            except _OutOfTime as out:
                raise self._out_of_time(
                    step,
                    out.number,
                    f"{_statements_that_ran(step, out.number)}; version {migration.version} was"
                    f" not {step.tracking}. `status` shows it; rerun to finish it",
                    rolled_back=False,
                ) from None
            except psycopg.Error as exc:
                reason = self._reason(exc)
                raise MigrationFailed(
                    f"{step.where(number)} failed in a NO TRANSACTION migration: {reason};"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " Repair by hand, then rerun",
                    _failure(step, number, reason, rolled_back=number == 1),
                ) from None
        try:
            # One simple query is one implicit transaction: both rows or neither.
            self.conn.execute(sql.SQL("RESET lock_timeout; RESET statement_timeout; {}").format(self._tracking(step)))
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{migration.filename}: all statements ran but the version row could not be written: {pg_reason(exc)}",
                _failure(step, 0, pg_reason(exc), rolled_back=not statements),
            ) from None
