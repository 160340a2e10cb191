"""The migrator's peak memory applying one large seed file, printed as a table.

    python -m bench.memory [peak]

Each row is ``python -m migrator up`` as a process on a fresh database, with one seed file of
1, 5, 10 or 20 MB: INSERTs of 1,000 rows each, or one INSERT of every row. Its peak resident
memory comes from the kernel (``wait4``'s ``ru_maxrss``); the baseline is the same command
with a seed file of one row. "MB per MB" is (peak - baseline) / file size: what each MB of
migration costs on top of the interpreter and its libraries. "without pglast" runs the same
with PostgreSQL's grammar over every statement (``pg_grammar.read``, which parses each with
pglast's C parser, and the refusals built on it) left out, to tell its share from the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.report import run_sections
from tools.pgserver import fresh_database

REPO = Path(__file__).resolve().parent.parent
SIZES_MB = (1, 5, 10, 20)
ROW = "({n}, 'customer-{n:010d}', 'seed row {n:010d} with some text to carry', {n} % 97, now())"
_UNCHECKED = (
    "import sys, migrator.parser as parser, migrator.pg_grammar as grammar;"
    " parser.read = lambda statements, use_tx: grammar.Reading((), ());"
    " parser.refuse_unrunnable = lambda parsed, reading: None;"
    " from migrator.cli.program import main; sys.exit(main(sys.argv[1:]))"
)


def write_seed(directory: Path, megabytes: float, rows_per_statement: int | None) -> int:
    """A seed file of about ``megabytes`` MB; its size in bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    target = int(megabytes * 1024 * 1024)
    head = "INSERT INTO seed (id, name, note, bucket, created) VALUES\n"
    parts = ["-- +goose Up\nCREATE TABLE seed (id bigint, name text, note text, bucket int, created timestamptz);\n"]
    size, n = len(parts[0]), 0
    while size < target:
        count = rows_per_statement or max(1, (target - size) // len(ROW.format(n=0)))
        rows = ",\n".join(ROW.format(n=n + i) for i in range(count))
        n += count
        parts.append(f"{head}{rows};\n")
        size += len(parts[-1])
    (directory / "00001_seed.sql").write_text("".join(parts))
    return size


# The kernel counts a forked child's copy of its parent as the child's own peak: the migrator
# is forked by this small launcher, not by the benchmark with its libraries loaded.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(dsn: str, directory: Path, *, checked: bool) -> float:
    """Peak resident memory of one ``up`` as a process, in MB."""
    program = ["-m", "migrator"] if checked else ["-c", _UNCHECKED]
    argv = [*program, "--dsn", dsn, "--dir", str(directory), "up"]
    launch = [sys.executable, "-c", _LAUNCH, *argv]
    launched = subprocess.run(launch, cwd=REPO, capture_output=True, text=True, check=False)
    code, kilobytes = launched.stdout.split()
    if code != "0":
        raise RuntimeError(f"the migrator failed on {directory}: {launched.stderr}")
    return int(kilobytes) / 1024  # ru_maxrss is in kB on Linux


def bench_peak(admin_dsn: str, scratch: Path) -> list[list[str]]:
    rows = []
    for shape, rows_per_statement in (("INSERTs of 1,000 rows", 1000), ("one INSERT", None)):
        for checked in (True, False):
            tiny = scratch / f"tiny-{shape}-{checked}"
            write_seed(tiny, 0.0001, rows_per_statement)
            with fresh_database(admin_dsn) as dsn:
                baseline = peak_rss_mb(dsn, tiny, checked=checked)
            for megabytes in SIZES_MB:
                directory = scratch / f"seed-{megabytes}-{shape}-{checked}"
                size = write_seed(directory, megabytes, rows_per_statement) / 1024 / 1024
                with fresh_database(admin_dsn) as dsn:
                    peak = peak_rss_mb(dsn, directory, checked=checked)
                label = f"{shape}, {size:.1f} MB" + ("" if checked else ", without pglast")
                rows.append([label, f"{peak:.0f} MB", f"{baseline:.0f} MB", f"{(peak - baseline) / size:.2f}"])
    return rows


def main(argv: list[str]) -> int:
    banner = f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; peak RSS of `python -m migrator up`"
    header = ["seed file", "peak RSS", "baseline (1 row)", "MB per MB of migration"]
    return run_sections(argv, __doc__ or "", header, {"peak": bench_peak}, banner)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
