"""Applying planned steps, and the facts of where one stopped when it fails.

A file runs with its version row in one transaction under ``SET LOCAL`` timeouts; one
that PostgreSQL's ``lock_timeout`` stopped is rolled back and retried with doubling
backoff. A NO TRANSACTION file runs statement by statement, its progress recorded in the
ledger after each one, so a run that dies part-way says how far it got. A file that ends
its transaction itself (its own ``COMMIT``) runs on from there as goose runs it, and its
version row is written in whatever transaction state the file left (own_transaction.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.pq import TransactionStatus

from migrator.errors import Failure, Interrupted, MigrationFailed
from migrator.events import Event, LockRetry, MigrationFinished, MigrationResult
from migrator.ledger import Ledger, State
from migrator.own_transaction import first_split, what_stays
from migrator.parser import Direction
from migrator.pg_grammar import statements_that
from migrator.pg_reasons import blocked_relation, pg_reason
from migrator.planning import Step
from migrator.safety import Safety
from migrator.store import Store


class _Blocked(Exception):
    """A transactional file hit lock_timeout; it was rolled back and may be retried."""

    def __init__(self, number: int, cause: psycopg.Error):
        self.number = number
        self.cause = cause


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
    """Applies steps on one session, writing goose's version row and the ledger's entry.
    ``observe(step, number)``, when given, is called after each statement of a file that runs in
    a transaction, on the same session and inside that transaction, while the statement's locks
    are still held (the rehearsal reads them there)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        store: Store,
        ledger: Ledger,
        safety: Safety,
        notify: Callable[[Event], None],
        *,
        observe: Callable[[Step, int], None] | None = None,
    ):
        self.conn = conn
        self.store = store
        self.ledger = ledger
        self.safety = safety
        self.notify = notify
        self.observe = observe

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
                time.sleep(backoff)
                backoff = min(backoff * 2, self.safety.max_backoff)

    def _attempt_in_transaction(self, step: Step) -> None:
        # BEGIN and the timeouts travel with the first statement, the version rows with
        # COMMIT: one round trip per statement and one more per file, where psql needs three
        # more. A failure still names its statement: BEGIN and SET do not fail.
        number = 0  # 0 while the version row is written
        cursor = self.conn.cursor()
        opening = f"BEGIN; {self.safety.set_statements(local=True)}"
        split = first_split(step.parsed)
        copies = _copies_to_client(step)
        try:
            if not step.parsed.statements:
                cursor.execute(opening)
            for index, statement in enumerate(step.parsed.statements, start=1):
                number = index
                _send(cursor, statement.sql, opening if index == 1 else None, copy=index in copies)
                if self.observe is not None:
                    self.observe(step, index)
                if index == split:
                    break
            else:
                number = 0
                cursor.execute(sql.SQL("{}; COMMIT").format(self._tracking(step)))
                return
        except KeyboardInterrupt:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise Interrupted(
                f"{step.where(number)} was interrupted; rolled back: nothing of this file was applied"
                f" and version {step.migration.version} was not {step.tracking}",
                _failure(step, number, "interrupted", rolled_back=True),
            ) from None
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            if isinstance(exc, pg_errors.LockNotAvailable):
                raise _Blocked(number, exc) from None
            raise MigrationFailed(
                f"{step.where(number)} failed: {pg_reason(exc)};"
                f" rolled back: nothing of this file was applied and version {step.migration.version}"
                f" was not {step.tracking}",
                _failure(step, number, pg_reason(exc), rolled_back=True),
            ) from None
        assert split is not None  # the loop ended at the file's own end of its transaction
        self._run_after_own_transaction(step, split, copies)

    def _run_after_own_transaction(self, step: Step, split: int, copies: set[int]) -> None:
        """The rest of a file whose statement ``split`` ended the migration's transaction, as
        goose runs it: each statement in autocommit or in a transaction the file begins, the
        timeouts for the session (their SET LOCAL ended with that transaction), then the
        version row, committing a transaction the file left open."""
        cursor = self.conn.cursor()
        cursor.execute(self.safety.set_statements(local=False))
        for number in range(split + 1, len(step.parsed.statements) + 1):
            try:
                _send(cursor, step.parsed.statements[number - 1].sql, None, copy=number in copies)
            except (KeyboardInterrupt, psycopg.Error) as exc:
                reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else pg_reason(exc)
                # goose rolls back what is open, as it would its own transaction.
                open_block = self.conn.info.transaction_status is not TransactionStatus.IDLE
                if open_block:
                    with suppress(psycopg.Error):
                        self.conn.execute("ROLLBACK")
                stays = what_stays(step.parsed, number, rolled_back_open=open_block)
                error = Interrupted if isinstance(exc, KeyboardInterrupt) else MigrationFailed
                raise error(
                    f"{step.where(number)} {'was interrupted' if error is Interrupted else 'failed: ' + reason};"
                    f" {stays}; version {step.migration.version} was not {step.tracking}. Repair by hand, then"
                    f" rerun: it runs the file again from its first statement, as goose does",
                    _failure(step, number, reason, rolled_back=False),
                ) from None
        # The file may have begun a transaction it left open: goose commits it with the version row.
        commit = "; COMMIT" if self.conn.info.transaction_status is TransactionStatus.INTRANS else ""
        self._write_tracking(step, sql.SQL("RESET lock_timeout; RESET statement_timeout; {}" + commit))

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
                _failure(step, 0, pg_reason(exc), rolled_back=True),
            ) from None
        cursor, copies = self.conn.cursor(), _copies_to_client(step)
        for number, statement in enumerate(statements, start=1):
            try:
                _send(cursor, statement.sql, None, copy=number in copies)
                self.ledger.progress(migration.version, number)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"{step.where(number)} was interrupted in a NO TRANSACTION migration;"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " `status` shows it; repair by hand, then rerun",
                    _failure(step, number, "interrupted", rolled_back=number == 1),
                ) from None
            except psycopg.Error as exc:
                raise MigrationFailed(
                    f"{step.where(number)} failed in a NO TRANSACTION migration: {pg_reason(exc)};"
                    f" {_statements_that_ran(step, number)}; version {migration.version} was not {step.tracking}."
                    " Repair by hand, then rerun",
                    _failure(step, number, pg_reason(exc), rolled_back=number == 1),
                ) from None
        self._write_tracking(step, sql.SQL("RESET lock_timeout; RESET statement_timeout; {}"))

    def _write_tracking(self, step: Step, template: sql.SQL) -> None:
        """The version row and the ledger entry, sent as ``template`` says, after every statement
        ran outside the migration's transaction: one simple query is one implicit transaction,
        so both rows or neither."""
        try:
            self.conn.execute(template.format(self._tracking(step)))
        except psycopg.Error as exc:
            raise MigrationFailed(
                f"{step.migration.filename}: all statements ran but the version row could not be written:"
                f" {pg_reason(exc)}",
                _failure(step, 0, pg_reason(exc), rolled_back=not step.parsed.statements),
            ) from None


def _copies_to_client(step: Step) -> set[int]:
    """The statements that are a COPY ... TO STDOUT: their rows are read and dropped, as goose does."""
    return set(statements_that(step.parsed.commands, "COPY TO STDOUT"))


def _send(cursor: psycopg.Cursor[Any], statement: str, opening: str | None, *, copy: bool) -> None:
    """Run one statement, ``opening`` (BEGIN and the timeouts) in the same round trip; a COPY
    to the client has its rows read and dropped, as goose's driver does."""
    if not copy:
        cursor.execute(f"{opening}; {statement}" if opening else statement)
        return
    if opening:
        cursor.execute(opening)
    with cursor.copy(statement) as rows:
        for _ in rows:
            pass
