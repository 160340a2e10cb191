"""The rehearsal and the drift check on a realistic corpus, timed, and what they catch.

    bash .ci/bench rehearsal        (python -m bench.rehearsal [rehearse|drift|digest|findings|all])

The target is a database with the first 127 files of bench/corpus.py's 130 applied and the
rows a team's database would hold (the corpus's seed rows, rows whose parent is set, rows
deleted since); the scratch server is the same PostgreSQL, as the dev stack's is.

1. rehearse: the 3 pending files rehearsed, in process (connected, imports done) and as a
   whole ``python -m migrator rehearse`` process; the goal is 5 s.
2. drift: the drift check alone, the same two ways; the goal is 1 s.
3. digest: the schema digests a migrating run records, on the 127-file schema and on the
   500-table one bench.migrator applies, beside what the run itself took.
4. findings: one seeded cause of failure at a time (the issue's four, data the schema
   allows but the new constraint does not, locks, a lossy Down, changes by hand, and what a
   rehearsal cannot see), each rehearsed and then really applied to the target: what the
   deployment did, and what the rehearsal and the drift check said before it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.corpus import write_realistic
from bench.migrator import REPO, table_statements, verdict, write_corpus
from bench.report import Section, run_sections
from migrator import (
    MigrationFailed,
    Migrator,
    ParseError,
    Rehearsal,
    TableName,
    Verdict,
    check_drift,
    collect,
    rehearse,
    schema_digests,
    take_snapshot,
)
from tools.pgserver import fresh_database

TABLE = TableName.parse("_migrations")
PENDING = 3
TARGETS = {"rehearse": 5.0, "drift": 1.0}
# What a team's database holds beyond the migrations' own seed rows: parents set, rows deleted
# since, a name entered twice, one longer than any seed's.
PRODUCTION_ROWS = (
    "UPDATE entity105 SET parent_id = id; DELETE FROM entity112 WHERE id > 10;"
    " INSERT INTO entity112 (name) VALUES ('item 1; seeded for entity112');"
    " INSERT INTO entity98 (name) VALUES (repeat('long name ', 30));"
)


def prepared(admin_dsn: str, scratch: Path, name: str = "realistic") -> Path:
    """The 130-file corpus, written once."""
    corpus = scratch / name
    if not corpus.exists():
        write_realistic(corpus)
    return corpus


def migrate_target(dsn: str, corpus: Path, extra_sql: str = "") -> None:
    """All but the last PENDING files applied, the production rows, and any change by hand."""
    files = collect(corpus)
    with psycopg.connect(dsn, autocommit=True) as conn:
        Migrator(conn, corpus, TABLE).up(target=files[-PENDING - 1].version, lock_wait=60)
        conn.execute(PRODUCTION_ROWS + extra_sql)


def median_seconds(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def whole_process(command: str, dsn: str, admin_dsn: str, corpus: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "migrator", "--dsn", dsn, "--dir", str(corpus), command, "--scratch-dsn", admin_dsn],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} exited {result.returncode}: {result.stderr}")
    return elapsed


def bench_rehearse(admin_dsn: str, scratch: Path, runs: int = 5) -> list[list[str]]:
    corpus = prepared(admin_dsn, scratch)
    with fresh_database(admin_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as target:
        migrate_target(dsn, corpus)
        last: list[Rehearsal] = []
        inside = median_seconds(runs, lambda: last.append(rehearse(target, admin_dsn, corpus, TABLE)))
        whole = statistics.median(whole_process("rehearse", dsn, admin_dsn, corpus) for _ in range(3))
    found = last[-1]
    assert found.passed, found.failures
    goal = TARGETS["rehearse"]
    return [
        [
            f"rehearse {PENDING} pending of 130 files: in process",
            f"{inside:.2f} s",
            verdict(inside <= goal, f"<= {goal:g} s"),
        ],
        ["  of which the replay of 127 and the drift check", f"{found.base.seconds:.2f} s", ""],
        [
            f"rehearse {PENDING} pending of 130 files: whole process",
            f"{whole:.2f} s",
            verdict(whole <= goal, f"<= {goal:g} s"),
        ],
    ]


def bench_drift(admin_dsn: str, scratch: Path, runs: int = 5) -> list[list[str]]:
    corpus = prepared(admin_dsn, scratch)
    with fresh_database(admin_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as target:
        migrate_target(dsn, corpus)
        inside = median_seconds(runs, lambda: check_drift(target, admin_dsn, corpus, TABLE))
        whole = statistics.median(whole_process("drift", dsn, admin_dsn, corpus) for _ in range(3))
    goal = TARGETS["drift"]
    return [
        ["drift check, 127 applied files: in process", f"{inside:.2f} s", verdict(inside <= goal, f"<= {goal:g} s")],
        ["drift check, 127 applied files: whole process", f"{whole:.2f} s", verdict(whole <= goal, f"<= {goal:g} s")],
    ]


def bench_digest(admin_dsn: str, scratch: Path, runs: int = 21) -> list[list[str]]:
    rows = []
    generated = scratch / "generated"
    if not generated.exists():
        write_corpus(generated, 500, table_statements)
    for corpus, what in ((prepared(admin_dsn, scratch), "127 realistic files"), (generated, "500 tables")):
        with fresh_database(admin_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
            started = time.perf_counter()
            Migrator(conn, corpus, TABLE).up(lock_wait=60)
            applied = time.perf_counter() - started
            objects = len(take_snapshot(conn, TABLE).objects)
            digest = median_seconds(runs, lambda: schema_digests(conn, TABLE))
        rows.append(
            [
                f"schema digests, {what} ({objects:,} objects)",
                f"{digest * 1000:.1f} ms",
                f"the up that applied them: {applied:.2f} s",
            ]
        )
    rows.append(
        [
            "schema digests of a no-op or failed run",
            "0 ms",
            "not taken: only a run that changed the schema records them",
        ]
    )
    return rows


@dataclass(frozen=True)
class Case:
    """One seeded cause: the last pending file's Up (and Down), and changes made by hand."""

    name: str
    up: str
    down: str = ""
    by_hand: str = ""
    applied: str = ""  # an extra file applied before the pending ones (a policy to collide with)


CASES = [
    Case("syntax error", "ALTER TABLE entity126 ADD COLUMN note text NOT NUL;\n"),
    Case("missing column", "CREATE INDEX entity126_owner_idx ON entity126 (owner_id);\n"),
    Case(
        "policy that already exists",
        "CREATE POLICY entity119_own ON entity119 FOR SELECT USING (status = 'active');\n",
        applied="ALTER TABLE entity119 ENABLE ROW LEVEL SECURITY;\n"
        "CREATE POLICY entity119_own ON entity119 USING (true);\n",
    ),
    Case(
        "foreign key to a missing table", "ALTER TABLE entity126 ADD COLUMN owner_id bigint REFERENCES owners (id);\n"
    ),
    Case("NOT NULL over NULLs the seed rows have too", "ALTER TABLE entity119 ALTER COLUMN parent_id SET NOT NULL;\n"),
    Case(
        "NOT NULL production's rows meet, the seed rows not",
        "ALTER TABLE entity105 ALTER COLUMN parent_id SET NOT NULL;\n",
    ),
    Case("unique index over production's duplicates", "CREATE UNIQUE INDEX entity112_name_key ON entity112 (name);\n"),
    Case(
        "foreign key with production orphans",
        "ALTER TABLE entity105 ADD CONSTRAINT entity105_parent_112\n"
        "    FOREIGN KEY (parent_id) REFERENCES entity112 (id);\n",
    ),
    Case(
        "ACCESS EXCLUSIVE on a busy table",
        "ALTER TABLE entity119 ADD COLUMN archived_at timestamptz;\n",
        "ALTER TABLE entity119 DROP COLUMN archived_at;\n",
    ),
    Case(
        "index built without CONCURRENTLY",
        "CREATE INDEX entity119_name_idx ON entity119 (name);\n",
        "DROP INDEX entity119_name_idx;\n",
    ),
    Case("Down that forgets a column", "ALTER TABLE entity119 ADD COLUMN archived_at timestamptz;\n", "SELECT 1;\n"),
    Case("table dropped by hand", "SELECT 1;\n", by_hand="DROP TABLE entity7 CASCADE;"),
    Case(
        "column type changed by hand",
        "SELECT 1;\n",
        by_hand="ALTER TABLE entity14 ALTER COLUMN parent_id TYPE integer;",
    ),
    Case(
        "type change a production value does not fit",
        "DROP VIEW active_entity98;\nALTER TABLE entity98 ALTER COLUMN name TYPE varchar(200);\n"
        "CREATE VIEW active_entity98 AS SELECT id, name, created_at FROM entity98 WHERE status = 'active';\n",
    ),
    Case(
        "a DO block that fails on production's rows",
        "-- +goose StatementBegin\nDO $$ BEGIN IF (SELECT count(*) FROM entity112) <> 20 THEN"
        " RAISE EXCEPTION 'entity112 lost rows'; END IF; END $$;\n-- +goose StatementEnd\n",
    ),
]


def _findings(found: Rehearsal) -> list[str]:
    said = [f"file failed: {file.failure.reason}" for file in found.files if file.failure is not None]
    said += [f"  ({file.limitation})" for file in found.files if file.limitation is not None]
    said += [
        f"data check {check.verdict}: {check.rows} {check.violation}"
        for check in found.data_checks
        if check.verdict in (Verdict.WOULD_FAIL, Verdict.MAY_FAIL)
    ]
    said += [
        f"lock: {lock}: {lock.blocks} of it wait"
        for file in found.files[-1:]
        for taken in file.locks
        for lock in taken.locks
        if lock.blocks is not None
    ]
    said += [
        f"down: {line}"
        for file in found.files[-1:]
        if file.down is not None and file.down.leftovers is not None
        for line in file.down.leftovers.lines()
    ]
    drift = found.base.drift.lines() if found.base.drift is not None else []
    said += [f"drift: {line}" for line in drift[:3]]
    if len(drift) > 3:
        said.append(f"drift: ... {len(drift) - 3} more object(s)")
    return said or ["nothing"]


def bench_findings(admin_dsn: str, scratch: Path) -> list[list[str]]:
    corpus = prepared(admin_dsn, scratch)
    files = collect(corpus)
    rows = []
    for case in CASES:
        directory = scratch / "case"
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(corpus, directory)
        (directory / files[-1].filename).write_text(f"-- +goose Up\n{case.up}-- +goose Down\n{case.down}")
        applied_up_to = files[-PENDING - 1].version
        if case.applied:
            applied_up_to += 1  # a second after the last applied file, before the first pending one
            (directory / f"{applied_up_to}_case_applied.sql").write_text(f"-- +goose Up\n{case.applied}")
        with fresh_database(admin_dsn) as dsn, psycopg.connect(dsn, autocommit=True) as target:
            Migrator(target, directory, TABLE).up(target=applied_up_to, lock_wait=60)
            target.execute(PRODUCTION_ROWS + case.by_hand)
            try:
                said = _findings(rehearse(target, admin_dsn, directory, TABLE))
            except ParseError as exc:  # PostgreSQL's grammar refuses it before a scratch database is made
                said = [f"refused when parsed: {exc}"]
            try:
                Migrator(target, directory, TABLE).up(lock_wait=60)
                deployed = "applied"
            except MigrationFailed as exc:
                deployed = f"FAILED: {exc.failure.reason if exc.failure else exc}"
            except ParseError:
                deployed = "refused when parsed, nothing run"
        rows.append([case.name, deployed, said[0]])
        rows += [["", "", more] for more in said[1:]]
    return rows


def main(argv: list[str]) -> int:
    sections: dict[str, Section] = {
        "rehearse": bench_rehearse,
        "drift": bench_drift,
        "digest": bench_digest,
        "findings": bench_findings,
    }
    banner = (
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]},"
        " PostgreSQL on loopback, scratch server = the target's"
    )
    header = ["measure, or seeded cause", "value, or what the deployment did", "goal, or what the rehearsal said first"]
    return run_sections(argv, __doc__ or "", header, sections, banner)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
