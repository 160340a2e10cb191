"""Plain-text tables for benchmark output, and the benchmarks' command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tools import pgserver

# A section of a benchmark: given the server's admin DSN and a scratch directory, its rows.
Section = Callable[[str, Path], Sequence[Sequence[str]]]


def machine(tools: str) -> str:
    """The banner's first words: the machine, its load now, the interpreter, and ``tools``."""
    return f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}, {tools}"


def compile_package(root: Path) -> None:
    """Bytecode for the checkout's migrator, as Python leaves it after a checkout's first run:
    with PYTHONDONTWRITEBYTECODE=1 (CI's shell) every timed start would compile it again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "migrator"], cwd=root, check=True)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(f"\n{title}\n{line}")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print(line)
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(line)


def run_sections(
    argv: Sequence[str], usage: str, header: Sequence[str], sections: Mapping[str, Section], banner: str
) -> int:
    """Run the section named in ``argv`` (or all) on a throwaway PostgreSQL on loopback."""
    which = argv[0] if argv else "all"
    if which not in {*sections, "all"}:
        print(usage, file=sys.stderr)
        return 2
    server = pgserver.start()
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        print(banner)
        for name, section in sections.items():
            if which in (name, "all"):
                print_table(f"bench: {name}", header, section(server.admin_dsn, scratch))
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0
