"""Every writing run records itself in ``<table>_runs``, beside goose's table.

The record is how `pulumi up` learns the migrator's verdict without the Nomad API: which
image ran for which deployment (the digest of the task as the jobspec defines it) in which
allocation (``RunPlace``: the command line reads ``MIGRATOR_IMAGE``, ``MIGRATOR_DEPLOYMENT`` and
``NOMAD_ALLOC_ID``, which the jobspec and Nomad set), the command and the rollback it carries
(``--rollback-id``), when it started and finished, what it applied and, for a failure, the file, statement, line and
PostgreSQL's message. Only the newest runs are kept, and the run that completed each
rollback, so that a rollback runs once. A failure is recorded on a connection of its own:
the failed migration's rollback, or a session PostgreSQL ended, must not take the record
with it.

A successful run that applied or rolled back a file also records the digests of the schema it
left (``schema_digests``, one per schema), so ``status`` can tell that the schema changed since
without a scratch server. A run that changed nothing records none: after a change by hand, the
next no-op run (Nomad restarts the task whenever it likes) would otherwise bless that change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from migrator.errors import Failure, Interrupted, MigrationFailed, MigratorError
from migrator.lock import GOOSE_LOCK_ROW
from migrator.store import tolerated
from migrator.table_name import TableName

KEEP_RUNS = 100
# Columns added since the table was first shipped, with their types: a table an older migrator
# created gains them, and reading one that has not gained them yet reads the Run's defaults.
_ADDED_COLUMNS = {"deployment": "text NOT NULL DEFAULT ''", "rollback_id": "text", "backend_pid": "integer"}
DIGESTS_COLUMN = "schema_digests"
# The columns the table was first shipped with, and their definitions.
_FIRST_COLUMNS = {
    "id": "bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY",
    "started_at": "timestamptz NOT NULL DEFAULT now()",
    "finished_at": "timestamptz",
    "image": "text NOT NULL DEFAULT ''",
    "allocation": "text NOT NULL DEFAULT ''",
    "command": "text NOT NULL",
    "outcome": "text NOT NULL DEFAULT 'running'",
    "applied": "bigint[] NOT NULL DEFAULT '{}'",
    "failed_file": "text",
    "failed_statement": "integer",
    "failed_line": "integer",
    "error": "text",
}


class Outcome(StrEnum):
    RUNNING = "running"  # still running, or the process died before it could say
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LOST = "lost"  # found running by a later run, its session gone: killed (out of memory?) or cut off


@dataclass(frozen=True)
class Run:
    """One recorded run of a command, as its row in the run history reads."""

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
    backend_pid: int | None = None  # the server session that ran it: a run whose session is gone was lost

    def as_dict(self) -> dict[str, object]:
        found = asdict(self)
        for key in ("started_at", "finished_at"):
            found[key] = found[key].isoformat() if found[key] else None
        return found


_RUN_FIELDS = [field.name for field in fields(Run)]


def _known_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A row's values of the Run's fields: a newer migrator's columns left out, and an older
    table's missing ones left to the Run's defaults."""
    return {name: row[name] for name in _RUN_FIELDS if name in row}


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

    def ensure(self) -> set[str]:
        """The table, made or brought up to date; the columns it has. A new table is made whole
        in one statement; a table an older migrator made under another role cannot gain
        columns: runs are then recorded without them."""
        columns = self._columns()
        if not columns:
            made = {**_FIRST_COLUMNS, **_ADDED_COLUMNS, DIGESTS_COLUMN: "jsonb"}
            self.conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                    self.table.identifier,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in made.items()
                    ),
                )
            )
            return set(made)
        missing = [name for name in _ADDED_COLUMNS if name not in columns]
        if missing:
            try:
                self.conn.execute(
                    sql.SQL("ALTER TABLE {} ").format(self.table.identifier)
                    + sql.SQL(", ").join(
                        sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(
                            sql.Identifier(name), sql.SQL(_ADDED_COLUMNS[name])
                        )
                        for name in missing
                    )
                )
            except pg_errors.InsufficientPrivilege:
                return columns
        return columns | set(missing)

    def start(
        self, command: str, image: str, allocation: str, deployment: str, rollback_id: str | None, *, columns: set[str]
    ) -> int:
        """Record a run as running, with its server session; forget all but the newest runs and,
        of each rollback, the run that completed it first; and close as lost every other run
        still running whose session no longer holds goose's lock (this run holds it now): it
        died without a word, killed or cut off. ``columns`` are those the table has."""
        given: dict[str, str | None] = {"command": command, "image": image, "allocation": allocation}
        given |= {
            name: value for name, value in (("deployment", deployment), ("rollback_id", rollback_id)) if name in columns
        }
        names = sql.SQL(", ").join(sql.Identifier(name) for name in given)
        values = sql.SQL(", ").join(sql.Placeholder(name) for name in given)
        if "backend_pid" in columns:
            names, values = sql.SQL("{}, backend_pid").format(names), sql.SQL("{}, pg_backend_pid()").format(values)
        kept = (
            " AND id NOT IN (SELECT min(id) FROM {runs} WHERE rollback_id IS NOT NULL AND outcome = 'succeeded'"
            " GROUP BY rollback_id)"
            if "rollback_id" in columns
            else ""
        )
        lost = (
            ", lost AS (UPDATE {runs} r SET outcome = 'lost', finished_at = now(), error = format("
            "'the run stopped without recording its outcome: its server session%%s no longer held the"
            " migration lock when run %%s started. Its process was most likely killed (out of memory?) or"
            " lost its connection', coalesce(' (backend pid ' || r.backend_pid || ')', ''),"
            " (SELECT id FROM started))"
            " WHERE r.outcome = 'running' AND r.id > (SELECT id FROM started) - %(keep)s AND NOT EXISTS"
            f" (SELECT FROM pg_locks l WHERE l.pid = r.backend_pid AND {GOOSE_LOCK_ROW}))"
            if "backend_pid" in columns
            else ""
        )
        row = self.conn.execute(
            sql.SQL(
                "WITH started AS (INSERT INTO {runs} ({names}) VALUES ({values}) RETURNING id),"
                " pruned AS (DELETE FROM {runs} WHERE id <= (SELECT id FROM started) - %(keep)s"
                + kept
                + ")"
                + lost
                + " SELECT id FROM started"
            ).format(runs=self.table.identifier, names=names, values=values),
            {**given, "keep": KEEP_RUNS},
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

    def record_digests(self, run_id: int, digests: Mapping[str, str], columns: set[str]) -> None:
        """Add the schema's digests to a run. A table an older migrator made gains their column
        first, when ``columns`` (those ``ensure`` found) lack it: ADD COLUMN IF NOT EXISTS
        would take the table's lock and leave a notice every time. A role that does not own
        the table cannot add it (InsufficientPrivilege)."""
        column = sql.Identifier(DIGESTS_COLUMN)
        if DIGESTS_COLUMN not in columns:
            self.conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} jsonb").format(self.table.identifier, column)
            )
        self.conn.execute(
            sql.SQL("UPDATE {} SET {} = %s WHERE id = %s").format(self.table.identifier, column),
            (Jsonb(dict(digests)), run_id),
        )

    def runs(self, limit: int = KEEP_RUNS) -> list[Run]:
        """The recorded runs, newest first; none when nothing was ever recorded. Columns a
        newer migrator added are left out, and ones an older table lacks read as None."""
        try:
            with tolerated(self.conn):
                rows = (
                    self.conn.cursor(row_factory=dict_row)
                    .execute(
                        sql.SQL("SELECT * FROM {} ORDER BY id DESC LIMIT %s").format(self.table.identifier), (limit,)
                    )
                    .fetchall()
                )
        except pg_errors.UndefinedTable:
            return []
        return [Run(**_known_columns(row)) for row in rows]

    def rollback_completed(self, rollback_id: str) -> Run | None:
        """The first run that completed the rollback ``rollback_id``, or None."""
        if "rollback_id" not in self._columns():
            return None
        row = (
            self.conn.cursor(row_factory=dict_row)
            .execute(
                sql.SQL("SELECT * FROM {} WHERE rollback_id = %s AND outcome = %s ORDER BY id LIMIT 1").format(
                    self.table.identifier
                ),
                (rollback_id, Outcome.SUCCEEDED.value),
            )
            .fetchone()
        )
        return None if row is None else Run(**_known_columns(row))


@dataclass(frozen=True)
class RunPlace:
    """Where a run happens, as its record keeps it: the image, Nomad's allocation and the
    deployment (the command line reads them from the variables the image and the job set)."""

    image: str = ""
    allocation: str = ""
    deployment: str = ""


class Recording:
    """One run's record, written when the run first changes the database."""

    def __init__(self, history: History, command: str, rollback_id: str | None = None, place: RunPlace = RunPlace()):
        self.history = history
        self.command = command
        self.rollback_id = rollback_id
        self.place = place
        self.run_id: int | None = None
        self.columns: set[str] = set()  # those the table has, once started

    def start(self) -> int:
        if self.run_id is None:
            self.columns = self.history.ensure()
            self.run_id = self.history.start(
                self.command,
                self.place.image,
                self.place.allocation,
                self.place.deployment,
                self.rollback_id,
                columns=self.columns,
            )
        return self.run_id


@dataclass(frozen=True)
class RunRecorder:
    """Records the runs of one command: ``reconnect`` opens the failure's own connection,
    ``redact`` removes the password from what is stored and ``digests``, when given, reads the
    schema's digests at the end of a successful run that changed something."""

    table: TableName
    command: str
    reconnect: Callable[[], psycopg.Connection]
    redact: Callable[[str], str]
    digests: Callable[[psycopg.Connection], Mapping[str, str]] | None = None
    place: RunPlace = RunPlace()

    @contextmanager
    def around(
        self,
        conn: psycopg.Connection,
        applied: Callable[[], list[int]],
        rollback_id: str | None = None,
        *,
        changed: Callable[[], bool],
    ) -> Iterator[Recording]:
        """Record the block's outcome (and the rollback it carries). The block calls ``start()``
        on what it is given before its first write; a block that fails before that was refused
        as bad input, which changes nothing, the history included. ``changed`` says whether the
        run applied or rolled back anything."""
        recording = Recording(History(conn, self.table), self.command, rollback_id, self.place)
        try:
            yield recording
        except BaseException as exc:
            if recording.run_id is None:
                raise
            outcome = Outcome.INTERRUPTED if isinstance(exc, Interrupted | KeyboardInterrupt) else Outcome.FAILED
            failure = exc.failure if isinstance(exc, MigrationFailed) else None
            # Best effort: a database that cannot take the record cannot take the migration either,
            # and the next run closes this one as lost.
            with suppress(psycopg.Error, MigratorError), self.reconnect() as own:
                History(own, self.table).finish(recording.run_id, outcome, applied(), failure, self.redact(str(exc)))
            raise
        run_id = recording.start()
        recording.history.finish(run_id, Outcome.SUCCEEDED, applied(), None, "")
        if self.digests is not None and changed():
            # The run succeeded and says so: digests that cannot be read or stored must not fail it.
            with suppress(psycopg.Error):
                recording.history.record_digests(run_id, self.digests(conn), recording.columns)
