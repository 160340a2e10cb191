"""Image size and container start-to-exit time of a no-op ``up``, printed as a table.

Run with ``bash .ci/bench image`` (starts Docker and the base image as CI does).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.report import print_table
from tools import pgserver
from tools.image_builds import Engine, build, copy_context, docker, run_image

RUNS = 10
# Times the migrator inside the container, so engine overhead can be told apart.
IN_CONTAINER = "s=$(date +%s%N); python3 -m migrator up; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))"


def timing_rows(what: str, seconds: list[float]) -> list[list[str]]:
    ms = sorted(s * 1000 for s in seconds)
    return [[f"{what}, median of {len(ms)}", f"{statistics.median(ms):.0f} ms (min {ms[0]:.0f}, max {ms[-1]:.0f})"]]


def main() -> int:
    engine = Engine(os.environ["MIGRATOR_TEST_BASE_IMAGE"], os.environ["TEST_REGISTRY"])
    server = pgserver.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            tag = build(engine, copy_context(Path(scratch)))
            build_seconds = time.perf_counter() - started
        size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
        base = int(docker("image", "inspect", "--format", "{{.Size}}", engine.base_image).stdout)
        first = run_image(tag, server.admin_dsn)
        assert first.returncode == 0, first.stderr
        created, started_to_exit, in_process = [], [], []
        for _ in range(RUNS):
            began = time.perf_counter()
            container = docker(
                "create", "--network", "host", "-e", f"POSTGRES_CONNECTION_STRING={server.admin_dsn}",
                "--entrypoint", "/bin/sh", tag, "-c", IN_CONTAINER,
            ).stdout.strip()  # fmt: skip
            created.append(time.perf_counter() - began)
            began = time.perf_counter()
            result = docker("start", "-a", container)
            started_to_exit.append(time.perf_counter() - began)
            docker("rm", container)
            lines = result.stdout.split()
            assert "no migrations to run" in result.stdout, result.stdout + result.stderr
            in_process.append(int(lines[-1]) / 1000)
    finally:
        server.stop()
    print_table(
        "db-migrator image (local debootstrap bookworm base)",
        ["measure", "value"],
        [
            ["image size, total", f"{size / 1e6:.1f} MB"],
            ["of which the base image", f"{base / 1e6:.1f} MB"],
            ["added by the Dockerfile", f"{(size - base) / 1e6:.1f} MB"],
            ["build, this run", f"{build_seconds:.1f} s"],
            *timing_rows("docker create (vfs copies the whole image)", created),
            *timing_rows("no-op up: container start to exit", started_to_exit),
            *timing_rows("no-op up: the python process alone", in_process),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
