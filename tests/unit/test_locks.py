"""The lock files against pyproject.toml, and the pins that must agree across the repository.

``requirements.txt`` (what ``pulumi install`` and operators install) and
``requirements-dev.txt`` (what .ci/run installs) are written by .ci/lock; pip installs a file
with hashes in hash-checking mode, where every package must be pinned with ``==`` and carry a
hash. The image has its own lock, ``migrator/requirements.txt``, for its platform.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import REPO
from tests.support.engine import PULUMI_VERSION

RUNTIME_LOCK = REPO / "requirements.txt"
DEV_LOCK = REPO / "requirements-dev.txt"
IMAGE_LOCK = REPO / "migrator" / "requirements.txt"
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    version: Version
    marker: str | None
    hashes: int


def entries(lock: Path) -> list[str]:
    """The lock's requirement lines, each with its continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", lock.read_text())
    lines = (line.split("#", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line]


def pins(lock: Path) -> dict[str, Pin]:
    found: dict[str, Pin] = {}
    for entry in entries(lock):
        requirement_text, *options = re.split(r"\s+(?=--)", entry)
        requirement = Requirement(requirement_text)
        [specifier] = list(requirement.specifier)
        assert specifier.operator == "==", f"{lock.name}: {entry} is not pinned"
        assert all(_HASH.fullmatch(option) for option in options), f"{lock.name}: {entry}"
        name = canonicalize_name(requirement.name)
        assert name not in found, f"{lock.name}: {name} twice"
        found[name] = Pin(Version(specifier.version), str(requirement.marker or "") or None, len(options))
    return found


def project() -> dict[str, list[Requirement]]:
    loaded = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {
        "runtime": [Requirement(text) for text in loaded["project"]["dependencies"]],
        "dev": [Requirement(text) for text in loaded["project"]["optional-dependencies"]["dev"]],
        "build": [Requirement(text) for text in loaded["build-system"]["requires"]],
    }


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK, IMAGE_LOCK], ids=lambda p: str(p.relative_to(REPO)))
def test_every_locked_package_is_pinned_with_its_hashes(lock: Path) -> None:
    """Hash-checking mode: pip refuses a package without ``==`` and a hash, a dependency that
    is not in the file included."""
    locked = pins(lock)
    assert locked
    assert {name for name, pin in locked.items() if pin.hashes == 0} == set()


@pytest.mark.parametrize(
    ("lock", "groups"),
    [(RUNTIME_LOCK, ("runtime",)), (DEV_LOCK, ("runtime", "dev", "build"))],
    ids=["requirements.txt", "requirements-dev.txt"],
)
def test_every_dependency_of_pyproject_is_locked_inside_its_range(lock: Path, groups: tuple[str, ...]) -> None:
    locked = pins(lock)
    declared = [requirement for group in groups for requirement in project()[group]]
    missing = [str(r) for r in declared if canonicalize_name(r.name) not in locked]
    assert missing == []
    outside = {
        str(r): str(locked[canonicalize_name(r.name)].version)
        for r in declared
        if not r.specifier.contains(locked[canonicalize_name(r.name)].version, prereleases=True)
    }
    assert outside == {}
    extras = {canonicalize_name(f"{r.name}-{extra}") for r in declared for extra in r.extras}
    assert extras <= set(locked), "an extra's packages are locked too (psycopg[binary]: psycopg-binary)"


def test_operators_run_what_ci_runs() -> None:
    """The runtime lock is resolved within the development lock: the same provider SDKs, so the
    same provider plugins, whoever runs `pulumi up`."""
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert set(runtime) < set(dev)
    assert {name: pin for name, pin in runtime.items() if dev[name] != pin} == {}
    assert {"pip", "setuptools"} <= set(dev) - set(runtime), "the installer and build backend, for CI only"


def test_the_engine_version_is_one_everywhere() -> None:
    """The engine tests drive the CLI .ci/tools builds and the SDK the lock installs."""
    [constraint] = [Requirement(line) for line in entries(REPO / ".ci" / "constraints.txt")]
    built = re.search(r"^PULUMI_VERSION=v(\S+)$", (REPO / ".ci" / "tools.d" / "pulumi.sh").read_text(), re.M)
    assert built is not None
    versions = {
        "constraints": str(constraint.specifier),
        "pulumi.sh": f"=={built[1]}",
        "tests/support/engine.py": f"=={PULUMI_VERSION.removeprefix('v')}",
        "requirements.txt": f"=={pins(RUNTIME_LOCK)['pulumi'].version}",
        "requirements-dev.txt": f"=={pins(DEV_LOCK)['pulumi'].version}",
    }
    assert set(versions.values()) == {versions["constraints"]}, versions


def test_the_image_runs_the_versions_the_program_was_tested_with() -> None:
    """The image's own lock (its platform's wheels only) pins what the migrator imports at the
    versions of the program's lock, inside pyproject.toml's ranges."""
    image, runtime = pins(IMAGE_LOCK), pins(RUNTIME_LOCK)
    assert set(image) == {"psycopg", "psycopg-binary", "pglast", "typing-extensions"}
    assert {name: pin.version for name, pin in image.items()} == {name: runtime[name].version for name in image}
    ranges = {str(canonicalize_name(r.name)): r.specifier for r in project()["runtime"]}
    declared = sorted(image.keys() & ranges.keys())
    assert declared == ["pglast", "psycopg"]
    assert [name for name in declared if image[name].version not in ranges[name]] == []


def test_ci_installs_the_lock_and_nothing_else() -> None:
    """.ci/run installs the development lock in hash-checking mode, then the project alone."""
    installs = [
        shlex.split(line.strip())
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if re.match(r"\s*python -m pip install", line)
    ]
    assert installs == [
        ["python", "-m", "pip", "install", "-q", "--require-hashes", "-r", "requirements-dev.txt"],
        ["python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", "."],
    ]


def test_pulumi_installs_the_runtime_lock() -> None:
    """`pulumi install` (toolchain pip) installs requirements.txt into the project's virtualenv.
    pip refuses an editable install of the project beside hashes ("there is no single file to
    hash"); the program needs none: the engine runs it, and its dynamic providers, in the
    project's directory."""
    runtime = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["runtime"]
    assert runtime == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    assert [line for line in entries(RUNTIME_LOCK) if line.startswith("-")] == []
