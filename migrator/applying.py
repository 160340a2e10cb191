"""Applying planned steps, and the facts of where one stopped when it fails.

A file runs with its version row in one transaction under ``SET LOCAL`` timeouts. The round
trip that opens it first proves, inside that transaction, that no other session holds goose's
lock and that the version is still to be applied (goose's rule: its newest row decides), so a
lock that excluded nothing (a pooler in transaction mode) can never apply a file twice. A file
that ``lock_timeout`` stopped is rolled back and retried after a pause (safety.py). A NO
TRANSACTION file runs statement by statement, its progress recorded in the ledger after each
one, so a run that dies part-way says how far it got; its concurrent index builds wait as long
as they need (index_builds.py), and it is not recorded while an INVALID index it built remains.

Every file ends by giving the session back as the run set it up (server_session.py), in the
round trip that records it, so a file's ``SET`` never reaches the next one. A lost connection is
reported as lost: what the server does with what was open, and when, never a rollback that
nobody saw happen.

A file that ends its transaction itself (its own ``COMMIT``) runs on from there as goose runs
it, and its version row is written in whatever transaction state the file left
(own_transaction.py).

With a budget for the whole run (``--run-timeout``), each statement's ``statement_timeout`` is
the smaller of its own and what is left, and no statement starts once nothing is. A file sent at
once carries the budget with it: before each statement the server itself works out what is left
(what was left when the client sent the file, less the time since the server received it) and
sets that statement's timeout, or refuses to start it (_budget_check).

A file whose statements can all go at once (_at_once) is sent in one round trip: its opening
and statements as one simple query, then its version row and COMMIT in a second, as before. The
server runs them in order and stops at the first that fails, whose result names it, so a failure
names its statement as before; the COMMIT is never on its way while a statement could still
fail. That second round trip travels with the next file when it goes at once too (_Pending): the
previous file's version row and COMMIT, then this file's opening and statements, so a run of
such files takes one round trip per file. The results say whether that COMMIT was done; if the
previous file's part failed, the previous file is run again on its own, which fails, or is
retried, exactly as it would have (its transaction was rolled back, and this file's never began).
Not psycopg's pipeline: a server running a pipeline waits for its next message as an active
session, where idle_in_transaction_session_timeout never ends it if the network dies
part-way, and libpq's pipeline mode drops the server's last words (a FATAL) when it ends the
session; a simple query arrives whole or not at all, and ends in the server's ReadyForQuery.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import generators, sql
from psycopg.abc import PQGen
from psycopg.pq import DiagnosticField, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGconn, PGresult

from migrator.durations import MIN_SECONDS, milliseconds
from migrator.errors import Failure, Interrupted, MigrationFailed
from migrator.events import Event, LockRetry, MigrationFinished, MigrationResult
from migrator.index_builds import BUILDS, INVALID_LEFT, concurrent_build, invalid_indexes, refusal_sql, repair
from migrator.ledger import Ledger
from migrator.ledger_entries import State
from migrator.lock import GOOSE_LOCK_ID
from migrator.own_transaction import first_split, what_stays
from migrator.parser import Direction, Statement
from migrator.pg_grammar import statements_that
from migrator.pg_reasons import blocked_relation, pg_reason
from migrator.planning import Step
from migrator.safety import Safety
from migrator.server_session import RunSession
from migrator.store import Store

# The guard that opens every file is one plain SELECT: a DO block's query is planned anew in
# every file (about three times the cost). SQL has no RAISE, so it fails, when it must, by
# casting a marked reason to an integer, which PostgreSQL reports as invalid input quoting the
# text; the pid makes the text no constant, which the planner would cast, and fail on, at once.
_GUARD_FAILED = "migrator guard: "
_LOCK_ELSEWHERE = "goose lock held by another session"
_DONE_MEANWHILE = "done meanwhile"
_BUDGET_SPENT = "migrator budget: spent"
_GUARD = (
    "SELECT CASE WHEN NOT pg_try_advisory_xact_lock({key}) THEN ('{failed}{elsewhere} ' || pg_backend_pid())::int"
    " WHEN {negation}coalesce((SELECT is_applied FROM {table} WHERE {since}version_id = {version}"
    " ORDER BY id DESC LIMIT 1), false) THEN ('{failed}{meanwhile} ' || pg_backend_pid())::int END"
)
# Before each statement of a file sent at once under a budget: what is left of it now, in the
# server's own clock (statement_timestamp() is when the server received the file's query, the
# same for all its commands), becomes the statement's timeout if it is less than its own, or
# the statement is not started once less than a millisecond is left. The last column says
# which timeout the statement got. pg_catalog is named: a file's search_path cannot replace a
# function here. The reason is cast the way the guard casts it (the pid: no constant). The server
# plans it before every statement: about 0.1 ms each (a SET LOCAL costs a tenth of that), less
# than a round trip over any network; one expression in double precision was no cheaper.
_BUDGET_CHECK = (
    "SELECT CASE WHEN left_ms < 1 THEN ('{spent} ' || pg_catalog.pg_backend_pid())::int END,"
    " pg_catalog.set_config('statement_timeout', floor(least(left_ms, {own}))::bigint || 'ms', true),"
    " left_ms < {own} FROM (SELECT {left} - 1000 * extract(epoch FROM pg_catalog.clock_timestamp()"
    " - pg_catalog.statement_timestamp()) AS left_ms) AS budget"
)


class _Blocked(Exception):
    """A transactional file hit lock_timeout; it was rolled back and may be retried."""

    def __init__(self, number: int, cause: psycopg.Error):
        self.number = number
        self.cause = cause


@dataclass(frozen=True)
class _Pending:
    """A file whose statements ran in its open transaction, its version rows and COMMIT not yet
    sent: they go with the next file's statements, or alone (Applier._flush)."""

    step: Step
    closing: str
    seconds: float  # how long the file took until then


class _OutOfTime(Exception):
    """The run's budget is spent: statement ``number`` of the file must not start."""

    def __init__(self, number: int):
        self.number = number


def _ran(step: Step, done: int) -> str:
    """The first ``done`` statements, which ran and stay applied."""
    ran = step.parsed.statements[:done]
    if not ran:
        return "no statement of it had run"
    listed = ", ".join(f"{i} (line {s.line})" for i, s in enumerate(ran, start=1))
    if len(ran) == 1:
        return f"statement {listed} ran and was NOT rolled back"
    return f"statements {listed} ran and were NOT rolled back"


def _failure(step: Step, number: int, reason: str, *, rolled_back: bool) -> Failure:
    line = step.parsed.statements[number - 1].line if number else None
    return Failure(step.migration.filename, step.direction.value, number or None, line, reason, rolled_back)


def _ended(exc: psycopg.Error) -> str:
    """How the session went: the server's own words, or a connection that went silent."""
    if exc.sqlstate:
        return f"the server ended the session ({pg_reason(exc)})"
    return f"the connection to the database was lost ({pg_reason(exc)})"


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
        session: RunSession,
        observe: Callable[[Step, int], None] | None = None,
        run_timeout: float | None = None,
    ):
        self.conn = conn
        self.store = store
        self.ledger = ledger
        self.safety = safety
        self.notify = notify
        self.session = session
        self.observe = observe
        # Composed once: psycopg's composition costs more client CPU than a file's round trip.
        self._table = store.table.identifier.as_string(conn)
        self._local = safety.set_statements(local=True)
        self._local_each = safety.each_set(local=True)
        self._seen_up_to = 0
        self.run_timeout = run_timeout
        self.deadline: float | None = None  # time.monotonic() when the budget is spent
        self._budget_bound = False  # the running statement's timeout is what is left of the budget
        self._pending: _Pending | None = None
        self._chain = True  # whether a file's closing may wait for the next file
        self._results: list[MigrationResult] = []
        self._started = 0.0  # time.perf_counter() when the current step started

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

    def apply_all(self, steps: list[Step], results: list[MigrationResult], *, seen_up_to: int) -> None:
        """Apply the steps in order, adding each finished one to ``results`` as it finishes.
        ``seen_up_to`` is the highest row id of goose's table before the steps were planned."""
        self._seen_up_to = seen_up_to
        self._results = results
        for step in steps:
            self._started = time.perf_counter()
            if step.parsed.use_tx:
                self._apply_in_transaction(step)
            else:
                self._flush()
                self._apply_without_transaction(step)
            if self._pending is None or self._pending.step is not step:
                self._finished(step, time.perf_counter() - self._started)
        self._flush()

    def _finished(self, step: Step, seconds: float) -> None:
        migration = step.migration
        result = MigrationResult(
            migration.version, migration.filename, step.direction, seconds, not step.parsed.statements
        )
        self._results.append(result)
        self.notify(MigrationFinished(result))

    def _flush(self) -> None:
        """Send the pending file's closing alone: the next step does not go at once, or none follows."""
        previous, self._pending = self._pending, None
        if previous is None:
            return
        try:
            self.conn.execute(previous.closing)
        except (psycopg.Error, KeyboardInterrupt) as exc:
            self._previous_failed(previous, exc)
            return
        self._finished(previous.step, previous.seconds)

    def _previous_failed(self, previous: _Pending, exc: psycopg.Error | KeyboardInterrupt) -> None:
        """The pending file's closing failed before its COMMIT was done: a lost session or
        Ctrl-C is told as when it is sent alone; otherwise the file runs again with its closing
        sent alone, which reports or retries as that does."""
        step = previous.step
        if isinstance(exc, psycopg.Error) and self.conn.broken:
            raise self._lost_in_transaction(step, 0, exc) from None
        with suppress(psycopg.Error):
            self.conn.execute("ROLLBACK")
        if isinstance(exc, KeyboardInterrupt):
            raise self._interrupted(step, 0) from None
        self._chain = False
        try:
            self._apply_in_transaction(step)
        finally:
            self._chain = True
        self._finished(step, previous.seconds)

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

    def _guard(self, step: Step) -> str:
        """Fails the transaction it opens when another session holds goose's lock, or when the
        version's newest row says the step was done meanwhile. A version planned as pending
        that was applied since has a row written since: only those are read, through the
        primary key (goose's table has no index on version_id, and a full scan per file would
        cost as much as the file again once the table holds thousands of rows). A rollback
        deletes rows, so going down reads them all."""
        up = step.direction is Direction.UP
        return _GUARD.format(
            key=GOOSE_LOCK_ID,
            failed=_GUARD_FAILED,
            elsewhere=_LOCK_ELSEWHERE,
            meanwhile=_DONE_MEANWHILE,
            negation="" if up else "NOT ",
            table=self._table,
            since=f"id > {self._seen_up_to} AND " if up else "",
            version=int(step.migration.version),
        )

    def _guard_failure(self, step: Step, exc: psycopg.Error) -> MigrationFailed | None:
        """The refusal the guard raised, or None when the error was not the guard's."""
        version, tracking = step.migration.version, step.tracking
        said = exc.diag.message_primary or ""
        if not isinstance(exc, pg_errors.InvalidTextRepresentation) or _GUARD_FAILED not in said:
            return None
        if _LOCK_ELSEWHERE in said:
            reason = (
                "another session holds goose's advisory lock, so the lock this run holds did not exclude it"
                " (a pooler in transaction mode?)"
            )
        else:
            done = "applied" if step.direction is Direction.UP else "rolled back"
            reason = f"version {version} was {done} meanwhile by another session: the lock did not exclude it"
        return MigrationFailed(
            f"{step.migration.filename} ({step.direction.value}): {reason}. Nothing of this file ran"
            f" and version {version} was not {tracking} again",
            _failure(step, 0, reason, rolled_back=True),
        )

    def _apply_in_transaction(self, step: Step) -> None:
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
                pause = self.safety.backoff(attempt)
                self.notify(LockRetry.of(step, blocked.number, attempt, self.safety.lock_retries + 1, pause))
                # No pause past the budget: the next attempt then finds it spent.
                left = pause if self.deadline is None else max(0.0, self.deadline - time.monotonic())
                time.sleep(min(pause, left))

    def _attempt_in_transaction(self, step: Step) -> None:
        # BEGIN, the timeouts and the guard travel with the first statement; the session's
        # reset and the version rows with COMMIT: one round trip per statement and one more per
        # file, where psql needs three more. A failure still names its statement: BEGIN, SET
        # and a guard that passes do not fail. A file that can go at once (_at_once) sends the
        # opening and every statement in one round trip instead, after the previous file's
        # closing when that waits (_Pending), and leaves its own to the next file.
        number = 0  # 0 while the version row is written
        cursor = self.conn.cursor()
        split = first_split(step.parsed)
        copies = _copies_to_client(step)
        at_once = split is None and not copies and self._at_once(step)
        opening = self._opening(step, at_once=at_once)
        closing = f"{self.session.file_end}; {self._local}; {self._tracking(step).as_string(self.conn)}; COMMIT"
        try:
            if not step.parsed.statements:
                cursor.execute("; ".join(opening))
            if at_once:
                previous, self._pending = self._pending, None
                batch = _Batch(opening, step.parsed.statements, self._budget_check(), previous)
                try:
                    self._run_batch(batch, previous)
                finally:
                    number = batch.reached()
                if not batch.previous_committed:  # it ran again on its own; this file never began
                    self._attempt_in_transaction(step)
                    return
            for index, statement in enumerate(() if at_once else step.parsed.statements, start=1):
                number = index
                budget = "; ".join(opening) if index == 1 else self._set_statement_timeout(index, local=True)
                _send(cursor, statement.sql, budget or None, copy=index in copies)
                if self.observe is not None:
                    self.observe(step, index)
                if index == split:
                    break
            else:
                number = 0
                self._close(step, closing, chained=at_once and self._chain)
                return
        except KeyboardInterrupt:
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise self._interrupted(step, number) from None
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
            if self.conn.broken:
                raise self._lost_in_transaction(step, number, exc) from None
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            if isinstance(exc, pg_errors.LockNotAvailable):
                raise _Blocked(number, exc) from None
            reason = self._reason(exc)
            raise self._guard_failure(step, exc) or MigrationFailed(
                f"{step.where(number)} failed: {reason};"
                f" rolled back: nothing of this file was applied and version {step.migration.version}"
                f" was not {step.tracking}",
                _failure(step, number, reason, rolled_back=True),
            ) from None
        assert split is not None  # the loop ended at the file's own end of its transaction
        self._run_after_own_transaction(step, split, copies)

    def _opening(self, step: Step, *, at_once: bool) -> list[str]:
        """BEGIN, the first statement's timeouts and the guard; a pending file's closing is sent
        first unless the file goes at once, which takes it along."""
        if not at_once:
            self._flush()
        try:
            timeouts = self._timeouts(1 if step.parsed.statements else 0)
        except _OutOfTime as spent:
            self._flush()
            raise self._out_of_time(
                step,
                spent.number,
                f"nothing of this file was applied and version {step.migration.version} was not {step.tracking}",
            ) from None
        return ["BEGIN", *self._opening_sets(timeouts), self._guard(step)]

    def _opening_sets(self, timeouts: Safety) -> list[str]:
        """The SET LOCAL commands that open a file, with its first statement's timeouts."""
        return self._local_each if timeouts is self.safety else timeouts.each_set(local=True)

    def _at_once(self, step: Step) -> bool:
        """Whether the file's statements may all be sent before the first one's result is in
        and run as they would one at a time: each exactly one command (so that results count
        statements) and nobody observing each one's locks. A budget goes with them
        (_budget_check)."""
        parsed = step.parsed
        if self.observe is not None or parsed.not_one_command is None or parsed.not_one_command:
            return False
        return len(parsed.statements) >= 2  # one statement goes with the opening anyway

    def _run_batch(self, batch: _Batch, previous: _Pending | None) -> None:
        """Send a file at once, after the ``previous`` file's closing; _OutOfTime when the server
        found the budget spent before one of its statements, which is then rolled back as when
        the client finds it so. The previous file is finished first, whatever follows, once its
        COMMIT is done; if it is not, the previous file's failure is told, or it runs again."""
        try:
            batch.run(self.conn)
        except (psycopg.Error, KeyboardInterrupt) as exc:
            if previous is not None and not batch.previous_committed:
                self._previous_failed(previous, exc)
                return
            if (
                isinstance(exc, psycopg.Error)
                and not self.conn.broken
                and _BUDGET_SPENT in str(exc.diag.message_primary)
            ):
                raise _OutOfTime(batch.reached()) from None
            raise
        finally:
            self._budget_bound = batch.budget_bound(batch.reached())
            if previous is not None and batch.previous_committed:
                self._finished(previous.step, previous.seconds)

    def _budget_check(self) -> str | None:
        """The command that gives each statement of a file sent now what is left of the run's
        budget (_BUDGET_CHECK); None without a budget."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        return _BUDGET_CHECK.format(
            spent=_BUDGET_SPENT, own=milliseconds(self.safety.statement_timeout), left=round(left * 1000)
        )

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
        commit = [sql.SQL("COMMIT")] if self.conn.info.transaction_status is TransactionStatus.INTRANS else []
        self._record_after_statements(step, [sql.SQL(self.session.file_end), self._tracking(step), *commit])

    def _close(self, step: Step, closing: str, *, chained: bool) -> None:
        """Send a file's version rows and COMMIT now, or leave them to go with the next file."""
        if chained:
            self._pending = _Pending(step, closing, time.perf_counter() - self._started)
        else:
            self.conn.execute(closing)

    def _interrupted(self, step: Step, number: int) -> Interrupted:
        return Interrupted(
            f"{step.where(number)} was interrupted; rolled back: nothing of this file was applied"
            f" and version {step.migration.version} was not {step.tracking}",
            _failure(step, number, "interrupted", rolled_back=True),
        )

    def _lost_in_transaction(self, step: Step, number: int, exc: psycopg.Error) -> MigrationFailed:
        """A session that ended mid-file: certain only of what its COMMIT, sent or not, allows."""
        version, tracking = step.migration.version, step.tracking
        if number == 0:
            outcome = (
                f"it ended while the file's COMMIT was on its way: whether this file was applied and version"
                f" {version} {tracking} is unknown until `status` shows it"
            )
        elif exc.sqlstate:
            outcome = (
                f"its transaction ended with it: nothing of this file was applied and version {version}"
                f" was not {tracking}"
            )
        else:
            outcome = (
                f"the file's COMMIT was never sent, so nothing of it will remain and version {version} was not"
                f" {tracking}: the server rolls its transaction back once it notices, at the latest"
                f" {self.safety.idle_timeout:g}s after the statement it is running ends"
                " (idle_in_transaction_session_timeout)"
            )
        return MigrationFailed(
            f"{step.where(number)} failed: {_ended(exc)}; {outcome}",
            _failure(step, number, pg_reason(exc), rolled_back=number > 0),
        )

    def _apply_without_transaction(self, step: Step) -> None:
        migration, statements = step.migration, step.parsed.statements
        built_concurrently = set(statements_that(step.parsed.commands, *BUILDS))
        builds = [
            concurrent_build(statement.sql) if number in built_concurrently else None
            for number, statement in enumerate(statements, start=1)
        ]
        # A concurrent index build waits for every older transaction: no lock_timeout cuts it short.
        waits = [0 if build is not None else self.safety.lock_timeout for build in builds]
        state = State.APPLYING if step.direction is Direction.UP else State.REVERTING
        try:
            timeouts = self._timeouts(1 if statements else 0)
        except _OutOfTime as spent:
            raise self._out_of_time(
                step, spent.number, f"nothing of this file ran and version {migration.version} was not {step.tracking}"
            ) from None
        entry = self.ledger.put_sql(migration.version, migration.filename, step.parsed.sha256, state, len(statements))
        opening = [sql.SQL(self._guard(step)), entry, sql.SQL(timeouts.set_statements(local=False))]
        try:
            self.conn.execute(sql.SQL("; ").join(opening + self._lock_timeout_change(waits, 0)))
        except psycopg.Error as exc:
            guarded = None if self.conn.broken else self._guard_failure(step, exc)
            raise guarded or MigrationFailed(
                f"{migration.filename}: preparing the run failed: {pg_reason(exc)}",
                _failure(step, 0, pg_reason(exc), rolled_back=True),
            ) from None
        copies = _copies_to_client(step)
        for number, statement in enumerate(statements, start=1):
            built = [b for b in builds[:number] if b is not None]
            self._run_statement(step, number, statement.sql, built, copy=number in copies)
            progress = [self.ledger.progress_sql(migration.version, number), *self._lock_timeout_change(waits, number)]
            # The next statement's budget travels with this one's progress, which is recorded
            # even when the budget is spent.
            out_of_time = False
            if number < len(statements):
                try:
                    if following := self._set_statement_timeout(number + 1, local=False):
                        progress.append(sql.SQL(following))
                except _OutOfTime:
                    out_of_time = True
            try:
                self.conn.execute(sql.SQL("; ").join(progress))
            except (psycopg.Error, KeyboardInterrupt) as exc:
                raise self._unrecorded(step, number, exc) from None
            if out_of_time:
                raise self._out_of_time(
                    step,
                    number + 1,
                    f"{_ran(step, number)}{self._invalid_left(built)}; version {migration.version} was not"
                    f" {step.tracking}. `status` shows it; rerun to finish it",
                    rolled_back=False,
                ) from None
        built = [build for build in builds if build is not None]
        # One simple query is one implicit transaction: both rows or neither, and neither while
        # a concurrent build's INVALID index remains (looked up under the file's search_path).
        closing = [refusal_sql(built)] if built else []
        self._record_after_statements(step, [*closing, sql.SQL(self.session.file_end), self._tracking(step)])

    def _record_after_statements(self, step: Step, closing: list[sql.Composable]) -> None:
        """The version row and the ledger entry, sent with ``closing`` after every statement ran
        outside the migration's transaction: one simple query is one implicit transaction (or
        the end of the one the file left open), so both rows or neither."""
        migration, statements = step.migration, step.parsed.statements
        try:
            self.conn.execute(sql.SQL("; ").join(closing))
        except psycopg.Error as exc:
            if exc.sqlstate == INVALID_LEFT:
                raise self._invalid_remains(step, str(exc.diag.message_primary).split("\n")) from None
            if self.conn.broken:
                what = f"whether version {migration.version} was {step.tracking} is unknown until `status` shows it"
                raise MigrationFailed(
                    f"{migration.filename}: all statements ran, then {_ended(exc)} while the version was"
                    f" recorded: {what}",
                    _failure(step, 0, pg_reason(exc), rolled_back=not statements),
                ) from None
            raise MigrationFailed(
                f"{migration.filename}: all statements ran but the version row could not be written: {pg_reason(exc)}",
                _failure(step, 0, pg_reason(exc), rolled_back=not statements),
            ) from None

    def _lock_timeout_change(self, waits: list[float], done: int) -> list[sql.Composable]:
        """The SET that gives the statement after the first ``done`` its lock_timeout, when it
        differs from the one before it (the file's opening sets the usual one)."""
        before = waits[done - 1] if done else self.safety.lock_timeout
        if done == len(waits) or waits[done] == before:
            return []
        return [sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{round(waits[done] * 1000)}ms"))]

    def _run_statement(
        self, step: Step, number: int, statement: str, builds: list[sql.Composable], *, copy: bool
    ) -> None:
        """Run one statement of a NO TRANSACTION file; on failure, say what of the file stays."""
        version, tracking = step.migration.version, step.tracking
        try:
            _send(self.conn.cursor(), statement, None, copy=copy)
        except KeyboardInterrupt:
            left = self._invalid_left(builds)
            raise Interrupted(
                f"{step.where(number)} was interrupted in a NO TRANSACTION migration;"
                f" {_ran(step, number - 1)}{left}; version {version} was not {tracking}."
                " `status` shows it; repair by hand, then rerun",
                _failure(step, number, "interrupted", rolled_back=number == 1 and not left),
            ) from None
        except psycopg.Error as exc:
            if self.conn.broken:
                raise MigrationFailed(
                    f"{step.where(number)} failed in a NO TRANSACTION migration: {_ended(exc)}, so it may or may not"
                    f" have completed; {_ran(step, number - 1)}; version {version} was not {tracking}."
                    " `status` shows the file as interrupted; repair by hand, then rerun",
                    _failure(step, number, pg_reason(exc), rolled_back=False),
                ) from None
            left, reason = self._invalid_left(builds), self._reason(exc)
            raise MigrationFailed(
                f"{step.where(number)} failed in a NO TRANSACTION migration: {reason};"
                f" {_ran(step, number - 1)}{left}; version {version} was not {tracking}. Repair by hand, then rerun",
                _failure(step, number, reason, rolled_back=number == 1 and not left),
            ) from None

    def _invalid_left(self, builds: list[sql.Composable]) -> str:
        """What a failed file's concurrent builds left behind, for its message; nothing when the
        session cannot say (it failed too)."""
        with suppress(psycopg.Error):
            if found := invalid_indexes(self.conn, builds):
                return f"; {repair(found)}"
        return ""

    def _unrecorded(self, step: Step, number: int, exc: psycopg.Error | KeyboardInterrupt) -> MigrationFailed:
        """A statement that ran, whose progress could not be recorded (a file's SET ROLE, a lost session)."""
        kind: type[MigrationFailed] = MigrationFailed
        if isinstance(exc, KeyboardInterrupt):
            why, kind = "the run was interrupted", Interrupted
        else:
            why = _ended(exc) if self.conn.broken else f"it failed: {pg_reason(exc)}"
        return kind(
            f"{step.where(number)} ran, but recording that it ran did not: {why}; {_ran(step, number)};"
            f" version {step.migration.version} was not {step.tracking}. Repair by hand, then rerun",
            _failure(step, number, why, rolled_back=False),
        )

    def _invalid_remains(self, step: Step, found: list[str]) -> MigrationFailed:
        """A file whose concurrent build left an INVALID index is not recorded: IF NOT EXISTS
        would take the index for built on the next run."""
        count = len(step.parsed.statements)
        command = "up" if step.direction is Direction.UP else "down"
        return MigrationFailed(
            f"{step.migration.filename} ({step.direction.value}): all {count} statement(s) ran, but"
            f" {repair(found)}; then run `{command}` again. Version {step.migration.version} was not"
            f" {step.tracking}",
            _failure(step, 0, repair(found), rolled_back=False),
        )


_BETWEEN = "\n;\n"


class _Batch:
    """A file's opening and statements as one simple query, and how far the server got.
    PostgreSQL (13 and later) gives each command of a simple query its own statement_timeout;
    ``check``, when given, goes before each statement (the run's budget: _BUDGET_CHECK)."""

    def __init__(
        self,
        opening: list[str],
        statements: tuple[Statement, ...],
        check: str | None = None,
        previous: _Pending | None = None,
    ):
        # Each part's statement number: 0 for the opening; a statement's check counts as its own;
        # -1 for the previous file's closing, which comes first (a part of several commands).
        self.owners = [0] * len(opening)
        parts = list(opening)
        for number, statement in enumerate(statements, start=1):
            if check is not None:
                parts.append(check)
                self.owners.append(number)
            parts.append(statement.sql)
            self.owners.append(number)
        self.checked = check is not None
        self.skip = 0 if previous is None else 1
        if previous is not None:
            parts.insert(0, previous.closing)
            self.owners.insert(0, -1)
        # A newline before each semicolon: a statement may end in a -- comment (goose ends a
        # StatementBegin block where its StatementEnd stands), which would swallow it.
        self.starts = list(accumulate((len(part) + len(_BETWEEN) for part in parts), initial=0))[:-1]
        self.text = _BETWEEN.join(parts)
        self.results: list[PGresult] = []
        self.count = len(statements)

    def run(self, conn: psycopg.Connection) -> None:
        """Send it and read the results as they come; the first error as psycopg raises it."""
        with conn.lock:
            conn.pgconn.send_query(self.text.encode(conn.info.encoding))
            conn.wait(self._results(conn.pgconn))
        failed = self._failed()
        if failed is not None:
            raise psycopg.errors.error_from_result(failed, encoding=conn.info.encoding)

    def _results(self, pgconn: PGconn) -> PQGen[None]:
        yield from generators.send(pgconn)
        try:
            while (result := (yield from generators.fetch(pgconn))) is not None:
                self.results.append(result)
        except psycopg.OperationalError:
            if self._failed() is None:  # a session the server ended has said why: keep its words
                raise

    def _failed(self) -> PGresult | None:
        return next((r for r in self.results if r.status == ExecStatus.FATAL_ERROR), None)

    @property
    def previous_committed(self) -> bool:
        """Whether the previous file's COMMIT, sent first, was done."""
        return self.skip == 0 or self._commit() is not None

    def _commit(self) -> int | None:
        """Where the previous file's COMMIT is among the results: the first COMMIT (a file sent
        at once has no transaction control of its own)."""
        done = (ExecStatus.COMMAND_OK, b"COMMIT")
        return next((i for i, r in enumerate(self.results) if (r.status, r.command_status) == done), None)

    def _own_results(self) -> list[PGresult]:
        """The results of this file's parts, after the previous file's."""
        commit = self._commit()
        return self.results if commit is None else self.results[commit + 1 :]

    def reached(self) -> int:
        """The statement the server stopped at: the one whose error points into it (an error in
        PostgreSQL's parsing of the whole query comes first), else the first without a result
        (the one that failed, or was running when the session ended, or was never reached). A
        failure of BEGIN, the timeouts or the guard is told as statement 1's, as when they
        travel with it one at a time."""
        failed = self._failed()
        position = None if failed is None else failed.error_field(DiagnosticField.STATEMENT_POSITION)
        if position is not None:
            part = bisect_right(self.starts, int(position) - 1) - 1  # it counts characters from 1
        else:
            part = self.skip + sum(1 for r in self._own_results() if r.status != ExecStatus.FATAL_ERROR)
        return min(max(self.owners[min(part, len(self.owners) - 1)], 1), self.count)

    def budget_bound(self, number: int) -> bool:
        """Whether statement ``number`` ran with what was left of the run's budget as its
        timeout (its check said so before it started)."""
        if not self.checked:
            return False
        part = (self.owners.index(number) if number in self.owners else len(self.owners)) - self.skip
        own = self._own_results()
        check = own[part] if part < len(own) else None
        return check is not None and check.status == ExecStatus.TUPLES_OK and check.get_value(0, 2) == b"t"


def _copies_to_client(step: Step) -> set[int]:
    """The statements that are a COPY ... TO STDOUT: their rows are read and dropped, as goose does."""
    return set(statements_that(step.parsed.commands, "COPY TO STDOUT"))


def _send(cursor: psycopg.Cursor[Any], statement: str, opening: str | None, *, copy: bool) -> None:
    """Run one statement, ``opening`` (BEGIN, the timeouts and the guard) in the same round trip;
    a COPY to the client has its rows read and dropped, as goose's driver does."""
    if not copy:
        cursor.execute(f"{opening}; {statement}" if opening else statement)
        return
    if opening:
        cursor.execute(opening)
    with cursor.copy(statement) as rows:
        for _ in rows:
            pass
