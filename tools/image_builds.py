"""Building and running the migrator image as Pulumi builds it, for the image tests and the
image benchmark."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.image_content import content_hash, image_files
from tools import REPO


def docker(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Engine:
    """A Docker engine with a local base image with python3 and a registry to push to (.ci/run starts them)."""

    base_image: str
    registry: str


def copy_context(destination: Path) -> Path:
    for name in image_files(REPO):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination


def build(engine: Engine, context: Path) -> str:
    """Build as Pulumi does (tag = content hash, same build args), on the local base."""
    tag = f"{engine.registry}/db-migrator:{content_hash(context)}"
    latest = max(int(p.name.split("_")[0]) for p in (context / "migrations").glob("*.sql"))
    docker(
        "build", "--network", "host", "-q", "-t", tag, "-f", str(context / "migrator" / "Dockerfile"),
        "--build-arg", f"BASE_IMAGE={engine.base_image}",
        "--build-arg", f"MIGRATIONS_HASH={content_hash(context)}",
        "--build-arg", f"LATEST_MIGRATION={latest}",
        str(context),
    )  # fmt: skip
    return tag


def run_image(tag: str, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--network", "host", "-e", f"POSTGRES_CONNECTION_STRING={dsn}", tag, *args,
                  check=False, timeout=300)  # fmt: skip
