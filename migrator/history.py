"""Every writing run records itself in ``<table>_runs``, beside goose's table.

The record is how `pulumi up` learns the migrator's verdict without the Nomad API: which
image ran (``MIGRATOR_IMAGE``, set by the jobspec) for which deployment (``MIGRATOR_DEPLOYMENT``,
the digest of the task as the jobspec defines it) in which allocation (``NOMAD_ALLOC_ID``,
set by Nomad), the command and the rollback it carries (``--rollback-id``), when it started
and finished, what it applied and, for a failure, the file, statement, line and
PostgreSQL's message. Only the newest runs are kept, and the run that completed each
rollback, so that a rollback runs once. A failure is recorded on a connection of its own:
the failed migration's rollback, or a session PostgreSQL ended, must not take the record
with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from migrator.errors import Failure, Interrupted, MigrationFailed
from migrator.store import TableName

IMAGE_ENV = "MIGRATOR_IMAGE"
DEPLOYMENT_ENV = "MIGRATOR_DEPLOYMENT"
ALLOCATION_ENV = "NOMAD_ALLOC_ID"
KEEP_RUNS = 100
# Columns added since the table was first shipped: a table an older migrator created gains them,
# and reading one that has not gained them yet reads these values instead.
_ADDED_COLUMNS = {"deployment": ("text NOT NULL DEFAULT ''", "''"), "rollback_id": ("text", "NULL")}


class Outcome(StrEnum):
    RUNNING = "running"  # still running, or the process died before it could say
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Run:
    id: int
    started_at: datetime
    finished_at: datetime | None
    image: str
    allocation: str
    command: str
    outcome: str
    applied: list[int]
    failed_file: str | None
    failed_statement: int | None
    failed_line: int | None
    error: str | None
    deployment: str = ""
    rollback_id: str | None = None

    def as_dict(self) -> dict[str, object]:
        found = asdict(self)
        for key in ("started_at", "finished_at"):
            found[key] = found[key].isoformat() if found[key] else None
        return found


def runs_table(table: TableName) -> TableName:
    return TableName(table.schema, f"{table.name}_runs")


class History:
    def __init__(self, conn: psycopg.Connection, table: TableName):
        self.conn = conn
        self.table = runs_table(table)

    def _columns(self) -> set[str]:
        """The table's column names; none when there is no table."""
        rows = self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (self.table.identifier.as_string(self.conn),),
        ).fetchall()
        return {str(row[0]) for row in rows}

    def ensure(self) -> None:
        columns = self._columns()
        if not columns:
            self.conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,"
                    " started_at timestamptz NOT NULL DEFAULT now(),"
                    " finished_at timestamptz,"
                    " image text NOT NULL DEFAULT '',"
                    " allocation text NOT NULL DEFAULT '',"
                    " command text NOT NULL,"
                    " outcome text NOT NULL DEFAULT 'running',"
                    " applied bigint[] NOT NULL DEFAULT '{{}}',"
                    " failed_file text, failed_statement integer, failed_line integer, error text)"
                ).format(self.table.identifier)
            )
        missing = [name for name in _ADDED_COLUMNS if name not in columns]
        if missing:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ").format(self.table.identifier)
                + sql.SQL(", ").join(
                    sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(
                        sql.Identifier(name), sql.SQL(_ADDED_COLUMNS[name][0])
                    )
                    for name in missing
                )
            )

    def start(self, command: str, image: str, allocation: str, deployment: str, rollback_id: str | None) -> int:
        """Record a run as running, and forget all but the newest runs and, of each rollback,
        the run that completed it first."""
        row = self.conn.execute(
            sql.SQL(
                "WITH started AS (INSERT INTO {runs} (command, image, allocation, deployment, rollback_id)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id),"
                " pruned AS (DELETE FROM {runs} WHERE id <= (SELECT id FROM started) - %s AND id NOT IN"
                " (SELECT min(id) FROM {runs} WHERE rollback_id IS NOT NULL AND outcome = %s GROUP BY rollback_id))"
                " SELECT id FROM started"
            ).format(runs=self.table.identifier),
            (command, image, allocation, deployment, rollback_id, KEEP_RUNS, Outcome.SUCCEEDED.value),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def finish(self, run_id: int, outcome: Outcome, applied: list[int], failure: Failure | None, error: str) -> None:
        self.conn.execute(
            sql.SQL(
                "UPDATE {} SET finished_at = now(), outcome = %s, applied = %s, failed_file = %s,"
                " failed_statement = %s, failed_line = %s, error = %s WHERE id = %s"
            ).format(self.table.identifier),
            (
                outcome.value,
                applied,
                failure.file if failure else None,
                failure.statement if failure else None,
                failure.line if failure else None,
                error or None,
                run_id,
            ),
        )

    def _select(self, columns: set[str]) -> sql.Composed:
        """A Run's columns, with the defaults of those the table has not gained yet."""
        added = [
            sql.Identifier(name)
            if name in columns
            else sql.SQL("{} AS {}").format(sql.SQL(default), sql.Identifier(name))
            for name, (_, default) in _ADDED_COLUMNS.items()
        ]
        return sql.SQL(
            "SELECT id, started_at, finished_at, image, allocation, command, outcome, applied,"
            " failed_file, failed_statement, failed_line, error, {} FROM {}"
        ).format(sql.SQL(", ").join(added), self.table.identifier)

    def runs(self, limit: int = KEEP_RUNS) -> list[Run]:
        """The recorded runs, newest first; none when nothing was ever recorded."""
        columns = self._columns()
        if not columns:
            return []
        cursor = self.conn.cursor(row_factory=class_row(Run))
        return cursor.execute(self._select(columns) + sql.SQL(" ORDER BY id DESC LIMIT %s"), (limit,)).fetchall()

    def rollback_completed(self, rollback_id: str) -> Run | None:
        """The first run that completed the rollback ``rollback_id``, or None."""
        columns = self._columns()
        if "rollback_id" not in columns:
            return None
        cursor = self.conn.cursor(row_factory=class_row(Run))
        return cursor.execute(
            self._select(columns) + sql.SQL(" WHERE rollback_id = %s AND outcome = %s ORDER BY id LIMIT 1"),
            (rollback_id, Outcome.SUCCEEDED.value),
        ).fetchone()


class Recording:
    """One run's record, written when the run first changes the database."""

    def __init__(self, history: History, command: str, rollback_id: str | None = None):
        self.history = history
        self.command = command
        self.rollback_id = rollback_id
        self.run_id: int | None = None

    def start(self) -> int:
        if self.run_id is None:
            self.history.ensure()
            environ = os.environ
            self.run_id = self.history.start(
                self.command,
                environ.get(IMAGE_ENV, ""),
                environ.get(ALLOCATION_ENV, ""),
                environ.get(DEPLOYMENT_ENV, ""),
                self.rollback_id,
            )
        return self.run_id


@dataclass(frozen=True)
class RunRecorder:
    """Records the runs of one command: ``reconnect`` opens the failure's own connection and
    ``redact`` removes the password from what is stored."""

    table: TableName
    command: str
    reconnect: Callable[[], psycopg.Connection]
    redact: Callable[[str], str]

    @contextmanager
    def around(
        self, conn: psycopg.Connection, applied: Callable[[], list[int]], rollback_id: str | None = None
    ) -> Iterator[Recording]:
        """Record the block's outcome (and the rollback it carries). The block calls ``start()``
        on what it is given before its first write; a block that fails before that was refused
        as bad input, which changes nothing, the history included."""
        recording = Recording(History(conn, self.table), self.command, rollback_id)
        try:
            yield recording
        except BaseException as exc:
            if recording.run_id is None:
                raise
            outcome = Outcome.INTERRUPTED if isinstance(exc, Interrupted | KeyboardInterrupt) else Outcome.FAILED
            failure = exc.failure if isinstance(exc, MigrationFailed) else None
            # Best effort: a database that cannot take the record cannot take the migration either.
            with suppress(psycopg.Error), self.reconnect() as own:
                History(own, self.table).finish(recording.run_id, outcome, applied(), failure, self.redact(str(exc)))
            raise
        recording.history.finish(recording.start(), Outcome.SUCCEEDED, applied(), None, "")
