"""Start-up, the no-op ``up`` and ``validate``: whole processes beside issue 27's goals.

    python -m bench.startup [cli|validate|noop|small|all]

1. cli: ``--version`` and ``--help`` (goal: 80 ms each).
2. validate: ``validate`` of 500 generated files (bench.migrator's shape), no database
   (goal: 200 ms); and in this process, the same files parsed with and without reading
   each statement with PostgreSQL's grammar (pg_grammar.read), to tell where the time goes.
3. noop: ``up`` with nothing to do at 1,000 applied versions, each contender on a database of
   its own (a seal is one contender's): the image (checksum manifest, goal: 150 ms), a
   checkout (its stat listing seals, goal: 250 ms), goose's CLI.
4. small: ``up`` from empty of 2, 5 and 10 files (bench.corpus's realistic files) on a fresh
   database each run, against goose's CLI (goal: 3x goose).

The noop and small sections also time the floor under their goals: a Python process that
imports psycopg, connects and runs ``SELECT 1``, the least any run of this stack pays before
doing anything of its own.

Before timing, each checkout's package is compiled to bytecode (``compileall``), as Python
leaves it after a checkout's first run; a shell with PYTHONDONTWRITEBYTECODE=1 (CI's) would
otherwise compile the package in every process, about 75 ms on our CI machines.

Every figure is the median of several runs, the contenders taking turns. With
``BENCH_BEFORE=<another checkout>`` every migrator row is run from that checkout too, in
turn with this one, for before/after figures on the same load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.corpus import write_realistic
from bench.goose import binary, goose_command, image_environment
from bench.migrator import REPO, table_statements, verdict, write_corpus
from bench.report import Section, compile_package, machine, run_sections
from migrator import SETTLED_NS, Direction, collect, parse_file, parse_sql
from tools.pgserver import fresh_database

RUNS = {"cli": 15, "validate": 9, "noop": 11, "small": 7}
TABLE = "_migrations"
GOALS_MS = {"--version": 80.0, "--help": 80.0, "validate": 200.0, "image": 150.0, "checkout": 250.0}
SMALL_GOAL = 3.0  # x goose
Timer = Callable[[], float]


def checkouts() -> dict[str, Path]:
    """This checkout, and BENCH_BEFORE's when set (its rows are labelled "before")."""
    found = {"": REPO}
    if before := os.environ.get("BENCH_BEFORE"):
        found["before: "] = Path(before).resolve()
    return found


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds from start to exit of one process, which must succeed."""
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} exited {result.returncode}: {result.stderr}")
    return elapsed


def migrator(*args: str) -> list[str]:
    return [sys.executable, "-m", "migrator", *args]


def medians(runs: int, timers: dict[str, Timer]) -> dict[str, float]:
    """Median seconds of each timer, taking turns."""
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(runs):
        for name, timer in timers.items():
            times[name].append(timer())
    return {name: statistics.median(measured) for name, measured in times.items()}


def goal_rows(found: dict[str, float], goals: dict[str, float]) -> list[list[str]]:
    """One row a timer: milliseconds, and the verdict against the goal its name ends with."""
    rows = []
    for name, seconds in found.items():
        goal = next((ms for key, ms in goals.items() if name.endswith(key)), None)
        met = "" if goal is None else verdict(seconds * 1000 <= goal, f"<= {goal:.0f} ms")
        rows.append([name, f"{seconds * 1000:.0f} ms", "", met])
    return rows


def psycopg_floor(dsn: str) -> list[str]:
    """The least a no-op of any Python program on psycopg costs: start, import, connect, one query."""
    return [sys.executable, "-c", "import sys, psycopg; psycopg.connect(sys.argv[1]).execute('SELECT 1')", dsn]


FLOOR = "floor: python, import psycopg, connect, SELECT 1"


def bench_cli(_admin_dsn: str, _scratch: Path) -> list[list[str]]:
    timers = {
        f"{label}{flag}": (lambda root=root, flag=flag: timed(migrator(flag), root))
        for flag in ("--version", "--help")
        for label, root in checkouts().items()
    }
    timers["python -c pass (the interpreter alone)"] = lambda: timed([sys.executable, "-c", "pass"], REPO)
    return goal_rows(medians(RUNS["cli"], timers), GOALS_MS)


def _parse_all(directory: Path, grammar: bool) -> float:
    """Seconds to parse both directions of every file, as validate does, in this process."""
    migrations = [m for m in collect(directory) if not m.go]
    started = time.perf_counter()
    for migration in migrations:
        for direction in Direction:
            if grammar:
                parse_file(migration.path, direction)
            else:
                parse_sql(migration.path.read_text(), direction)
    return time.perf_counter() - started


def bench_validate(_admin_dsn: str, scratch: Path) -> list[list[str]]:
    corpus = scratch / "validate"
    write_corpus(corpus, 500, table_statements)
    timers = {
        f"{label}validate": (lambda root=root: timed(migrator("--dir", str(corpus), "validate"), root))
        for label, root in checkouts().items()
    }
    rows = goal_rows(medians(RUNS["validate"], timers), GOALS_MS)
    _parse_all(corpus, grammar=True)  # imports pglast, as a process does once
    inside = medians(
        RUNS["validate"],
        {
            "in this process: goose's grammar and pg_grammar.read": lambda: _parse_all(corpus, grammar=True),
            "in this process: goose's grammar alone (parse_sql)": lambda: _parse_all(corpus, grammar=False),
        },
    )
    return [[name.replace("validate", "validate 500 files"), *rest] for name, *rest in rows] + goal_rows(inside, {})


def bench_noop(admin_dsn: str, scratch: Path) -> list[list[str]]:
    corpus = scratch / "noop"
    write_corpus(corpus, 1_000, lambda v: [f"SELECT {v};"])
    image = image_environment(corpus)
    timers: dict[str, Timer] = {}
    with (
        fresh_database(admin_dsn) as goose_dsn,
        fresh_database(admin_dsn) as dsn_a,
        fresh_database(admin_dsn) as dsn_b,
        fresh_database(admin_dsn) as dsn_c,
        fresh_database(admin_dsn) as dsn_d,
    ):
        databases = iter((dsn_a, dsn_b, dsn_c, dsn_d))
        for label, root in checkouts().items():
            for kind, env in (("image (checksum manifest)", image), ("checkout (stat listing)", {})):
                command = migrator("--dsn", next(databases), "--dir", str(corpus), "--table", TABLE, "up")
                timed(command, root, env)
                timers[f"{label}no-op up, 1,000 applied: {kind.split()[0]}"] = (
                    lambda command=command, root=root, env=env: timed(command, root, env)
                )
        timed(goose_command(goose_dsn, corpus), REPO)
        # The files are a second old: wait until a checkout's listing may seal them, then seal.
        time.sleep(SETTLED_NS / 1e9 + 0.1)
        for timer in timers.values():
            timer()
        timers["goose up"] = lambda: timed(goose_command(goose_dsn, corpus), REPO)
        timers[FLOOR] = lambda: timed(psycopg_floor(goose_dsn), REPO)
        found = medians(RUNS["noop"], timers)
    goose = found["goose up"]
    rows = goal_rows(found, GOALS_MS)
    for row, seconds in zip(rows, found.values(), strict=True):
        row[2] = f"{seconds / goose:.2f}"
    return rows


def bench_small(admin_dsn: str, scratch: Path) -> list[list[str]]:
    source = scratch / "realistic"
    write_realistic(source, 10)
    files = sorted(p for p in source.iterdir() if p.suffix == ".sql")
    rows = []
    for count in (2, 5, 10):
        corpus = scratch / f"small{count}"
        corpus.mkdir()
        for path in files[:count]:
            (corpus / path.name).write_bytes(path.read_bytes())

        def fresh(command: Callable[[str], list[str]], root: Path) -> Timer:
            def run() -> float:
                with fresh_database(admin_dsn) as dsn:
                    return timed(command(dsn), root)

            return run

        timers = {
            f"{label}up {count} files from empty": fresh(
                lambda dsn, corpus=corpus: migrator("--dsn", dsn, "--dir", str(corpus), "--table", TABLE, "up"), root
            )
            for label, root in checkouts().items()
        }
        timers[f"goose up {count} files from empty"] = fresh(
            lambda dsn, corpus=corpus: goose_command(dsn, corpus), REPO
        )
        if count == 2:
            timers[FLOOR] = fresh(psycopg_floor, REPO)
        found = medians(RUNS["small"], timers)
        goose = found[f"goose up {count} files from empty"]
        for name, seconds in found.items():
            ratio = seconds / goose
            mine = not name.startswith(("goose", FLOOR))
            met = verdict(ratio <= SMALL_GOAL, f"<= {SMALL_GOAL:.0f}x goose") if mine else ""
            rows.append([name, f"{seconds * 1000:.0f} ms", f"{ratio:.2f}", met])
    return rows


def main(argv: list[str]) -> int:
    sections: dict[str, Section] = {
        "cli": bench_cli,
        "validate": bench_validate,
        "noop": bench_noop,
        "small": bench_small,
    }
    goose = subprocess.run([binary("goose"), "-version"], capture_output=True, text=True, check=True).stdout.strip()
    for root in checkouts().values():
        compile_package(root)
    header = ["measure (whole process unless said)", "value", "ratio to goose", "goal"]
    return run_sections(argv, __doc__ or "", header, sections, machine(f"{goose}, PostgreSQL on loopback"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
