"""What a migration blocked by a lock costs the application, printed as a table.

    python -m bench.lock_stall [stall]

pgbench's select-only clients read ``pgbench_accounts`` the whole time. A session opens a
transaction that reads the table and holds it for BLOCK_SECONDS, as a long report or a
forgotten ``BEGIN`` does; meanwhile a migrator applies ``ALTER TABLE pgbench_accounts ADD
COLUMN``, which needs ACCESS EXCLUSIVE. While the ALTER waits for its lock, every later read
of the table waits behind it: each attempt stalls the application for up to its
``lock_timeout``. Each row is one retry policy (``migrator.safety.Safety``): the worst
latency of any read while the migration was blocked, the throughput then against the
throughput before, the attempts it took, and how long after the table was free the file
was applied (what the pauses between attempts cost). The migrator runs as a process with
the library's ``Safety``, so the same script measures an older checkout too.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import conninfo

from bench.report import run_sections
from tools.pgserver import fresh_database

REPO = Path(__file__).resolve().parent.parent
BEFORE_SECONDS = 3.0  # pgbench alone: the throughput to compare with
BLOCK_SECONDS = 8.0  # the long transaction the migration waits for
AFTER_SECONDS = 4.0
CLIENTS = 4
# lock_timeout, lock_retries, first_backoff, max_backoff: this checkout's defaults first.
POLICIES = [
    ("5s attempts, pauses 1s doubling (the migrator's old defaults)", 5.0, 12, 1.0, 30.0),
    ("2s attempts, pauses up to 0.5s doubling to 5s", 2.0, 30, 0.5, 5.0),
    ("1s attempts, pauses up to 0.5s doubling to 5s", 1.0, 30, 0.5, 5.0),
    ("0.5s attempts, pauses up to 0.5s doubling to 5s", 0.5, 30, 0.5, 5.0),
    ("0.2s attempts, pauses up to 0.5s doubling to 5s", 0.2, 30, 0.5, 5.0),
    ("0.1s attempts, pauses up to 0.5s doubling to 5s", 0.1, 30, 0.5, 5.0),
]
# Applies one directory with the given Safety through the library, counting the lock retries.
_APPLY = """
import sys
from pathlib import Path
from migrator import LockRetry, Migrator, Safety, TableName, connect
dsn, directory, lock_timeout, retries, first, most = sys.argv[1:]
retried = []
safety = Safety(lock_timeout=float(lock_timeout), lock_retries=int(retries), first_backoff=float(first),
                max_backoff=float(most))
with connect(dsn) as conn:
    Migrator(conn, Path(directory), TableName.parse("_migrations"), safety=safety,
             on_event=lambda e: retried.append(e) if isinstance(e, LockRetry) else None).up(lock_wait=60)
print(len(retried) + 1)
"""


@dataclass
class Measured:
    worst_ms: float
    tps_before: float
    tps_blocked: float
    attempts: str
    applied_after: float


def _transactions(log_dir: Path) -> list[tuple[float, float]]:
    """(completed at, latency) of every pgbench transaction, in seconds since the epoch."""
    found = []
    for log in log_dir.glob("pgbench_log.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            latency_us, epoch, micros = int(fields[2]), int(fields[4]), int(fields[5])
            found.append((epoch + micros / 1e6, latency_us / 1e6))
    return found


def measure(admin_dsn: str, policy: tuple[str, float, int, float, float], scratch: Path) -> Measured:
    _, lock_timeout, retries, first, most = policy
    with fresh_database(admin_dsn) as dsn:
        params = conninfo.conninfo_to_dict(dsn)
        env = {**os.environ, "PGPASSWORD": str(params["password"])}
        target = [
            "-h",
            str(params["host"]),
            "-p",
            str(params["port"]),
            "-U",
            str(params["user"]),
            str(params["dbname"]),
        ]
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", *target], env=env, check=True, capture_output=True)
        migrations = Path(tempfile.mkdtemp(dir=scratch))
        (migrations / "00001_note.sql").write_text("-- +goose Up\nALTER TABLE pgbench_accounts ADD COLUMN note text;\n")
        log_dir = Path(tempfile.mkdtemp(dir=scratch))
        total = BEFORE_SECONDS + BLOCK_SECONDS + AFTER_SECONDS
        traffic = subprocess.Popen(
            ["pgbench", "-n", "-b", "select-only", "-c", str(CLIENTS), "-j", "2", "-T", f"{total:.0f}", "-l", *target],
            env=env, cwd=log_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(BEFORE_SECONDS)
        with psycopg.connect(dsn) as blocker:
            blocker.execute("SELECT 1 FROM pgbench_accounts LIMIT 1")
            blocked_from = time.time()
            migrator = subprocess.Popen(
                [sys.executable, "-c", _APPLY, dsn, str(migrations), str(lock_timeout), str(retries), str(first),
                 str(most)],
                cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(BLOCK_SECONDS)
            blocker.rollback()
            blocked_until = time.time()
        out, err = migrator.communicate(timeout=300)
        applied_at = time.time()
        traffic.wait(timeout=total + 60)
    if migrator.returncode != 0:
        raise RuntimeError(f"the migrator failed: {err}")
    done = _transactions(log_dir)
    before = [t for t, _ in done if blocked_from - BEFORE_SECONDS + 0.5 <= t < blocked_from]
    during = [(t, latency) for t, latency in done if blocked_from <= t < blocked_until]
    # A read that started while the migration was blocked and finished later counts too.
    worst = max((latency for t, latency in done if t - latency < blocked_until and t >= blocked_from), default=0.0)
    return Measured(
        worst * 1000,
        len(before) / (BEFORE_SECONDS - 0.5),
        len(during) / (blocked_until - blocked_from),
        out.strip(),
        applied_at - blocked_until,
    )


def bench_stall(admin_dsn: str, scratch: Path) -> list[list[str]]:
    rows = []
    for policy in POLICIES:
        runs = [measure(admin_dsn, policy, scratch) for _ in range(2)]
        worst = max(run.worst_ms for run in runs)
        share = statistics.mean(run.tps_blocked / run.tps_before for run in runs)
        rows.append(
            [
                policy[0],
                f"{worst:.0f} ms",
                f"{share:.0%}",
                "/".join(run.attempts for run in runs),
                "/".join(f"{run.applied_after:.1f}s" for run in runs),
            ]
        )
    return rows


def main(argv: list[str]) -> int:
    banner = (
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; pgbench select-only, {CLIENTS} clients;"
        f" a transaction holds the table {BLOCK_SECONDS:g}s; two runs per policy"
    )
    header = ["retry policy", "worst read", "throughput while blocked", "attempts", "applied after the table was free"]
    return run_sections(argv, __doc__ or "", header, {"stall": bench_stall}, banner)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
