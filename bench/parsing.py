"""What parsing costs the migrator before it sends anything: time and peak memory, printed as a table.

    python -m bench.parsing

Every file's Up section is parsed as ``up`` parses it before running anything (goose's grammar,
then the statement checks that need PostgreSQL's own grammar), in a fresh process per run, so
the peak memory is that work's alone: the process's highest resident set size after parsing,
less what it held before the first file (the imports done). Three corpora:

1. 500 generated migrations (bench.migrator's shape: a table, two rows, an index each);
2. about 130 files as a team writes them (bench/corpus.py: StatementBegin/End, PL/pgSQL,
   NO TRANSACTION);
3. one seed file: a single INSERT of about 10 MB, one row per line.

Times are the median of RUNS runs, each run in a process of its own.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.corpus import write_realistic
from bench.migrator import REPO, table_statements, write_corpus
from bench.report import print_table

RUNS = 3
SEED_BYTES = 10 * 1024 * 1024

# Runs in the child: parse every file's Up section, report seconds and the peak RSS it added.
_CHILD = """\
import json, resource, sys, time
from pathlib import Path
import pglast.parser  # imported before the baseline: only parsing counts
from migrator import Direction, collect, parse_file
files = [m.path for m in collect(Path(sys.argv[1]))]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
for path in files:
    parse_file(path, Direction.UP)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kib": peak - before, "files": len(files)}))
"""


def write_seed(directory: Path) -> None:
    """One migration whose Up section is a single INSERT of about SEED_BYTES, a row per line."""
    directory.mkdir(parents=True, exist_ok=True)
    rows, size, number = [], 0, 0
    while size < SEED_BYTES:
        number += 1
        row = f"    ({number}, 'customer {number}; seeded', 'customer{number}@example.com', 'note {number}')"
        rows.append(row)
        size += len(row) + 2
    body = "INSERT INTO customers (id, name, email, note) VALUES\n" + ",\n".join(rows) + ";\n"
    (directory / "00001_seed_customers.sql").write_text(
        "-- +goose Up\n" + body + "-- +goose Down\nDELETE FROM customers;\n"
    )


def measure(directory: Path) -> tuple[float, float, int]:
    """Median seconds, highest peak MiB over the runs, and the number of files."""
    runs = []
    for _ in range(RUNS):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(directory)], capture_output=True, text=True, cwd=REPO, check=True
        )
        runs.append(json.loads(child.stdout))
    seconds = statistics.median(run["seconds"] for run in runs)
    return seconds, max(run["peak_kib"] for run in runs) / 1024, runs[0]["files"]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-parsing-") as scratch:
        root = Path(scratch)
        write_corpus(root / "generated", 500, table_statements)
        write_realistic(root / "realistic")
        write_seed(root / "seed")
        rows = []
        for name in ("generated", "realistic", "seed"):
            folder = root / name
            megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 1024 / 1024
            seconds, peak, files = measure(folder)
            rows.append([f"{name}: {files} file(s), {megabytes:.1f} MiB", f"{seconds:.3f} s", f"{peak:.1f} MiB"])
    print_table("bench: parsing every file's Up section", ["corpus", "time (median)", "peak memory added"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
