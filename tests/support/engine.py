"""The real Pulumi engine on a local stack: the CLI that ``.ci/tools`` builds, a file backend
(``pulumi login file://...``), a passphrase secrets provider and a copy of the project, so
that no test writes ``Pulumi.<stack>.yaml`` or state into the repository.

What runs for real: the CLI and its engine (config schema, secrets, diffs, state, exclusions),
the program (``__main__.py``, served to the engine by tests/support/engine_host.py) and the dynamic
provider of ``MigrationStatus`` (tests/support/engine_plugins/pulumi-resource-pulumi-python, against
the test's PostgreSQL). What does not: the resources of the docker and nomad packages. The
docker plugin is not served by the module proxy and Nomad cannot run here, so every operation
excludes them with the engine's own ``--exclude``; their default providers load as the
placeholder of tests/support/unbuilt_provider.py, which refuses any call about a resource.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import REPO

PULUMI_VERSION = "v3.259.0"  # .ci/tools.d/pulumi.sh builds this CLI
PROJECT = "api-migrations"
PASSPHRASE = "engine-tests-only"
ENGINE_PLUGINS = Path(__file__).resolve().parent / "engine_plugins"
NOT_RUN_PACKAGES = ("docker", "nomad")
# The one output of an unrun resource the program reads: the image's digest, which the job
# and the status resource take. A fixed stand-in keeps what depends on it known and stable,
# as a pushed image's digest is; nothing asserts on its value.
STAND_IN_DIGEST = "localhost:5000/db-migrator@sha256:" + "0" * 64
STAND_IN_OUTPUTS = {"docker:index/image:Image": {"repoDigest": STAND_IN_DIGEST}}
NOT_RUN = tuple(f"**{package}:index/**" for package in NOT_RUN_PACKAGES)
TIMEOUT_SECONDS = 600


def pulumi_cli() -> str | None:
    """The CLI .ci/tools built, else one on PATH; None when neither is the pinned version."""
    found = shutil.which("pulumi", path=os.pathsep.join([str(REPO / ".tools" / "bin"), os.environ.get("PATH", "")]))
    if found is None:
        return None
    version = subprocess.run([found, "version"], capture_output=True, text=True, check=False, timeout=60)
    return found if version.stdout.strip() == PULUMI_VERSION else None


def copy_project(destination: Path, umask: int = 0o022) -> Path:
    """The project's files (tracked and not ignored, as in the working tree) as a checkout made
    under ``umask`` would have them: same bytes, fresh times, modes from the umask."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o777 & ~umask)
        shutil.copyfile(source, target)
        executable = os.access(source, os.X_OK)
        os.chmod(target, (0o777 if executable else 0o666) & ~umask)
    return destination


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


class CommandFailed(AssertionError):
    pass


class LocalStack:
    """One stack of the project in ``checkout``, its state under ``backend``."""

    def __init__(self, cli: str, checkout: Path, backend: Path, home: Path, name: str) -> None:
        self.cli = cli
        self.checkout = checkout
        self.backend = backend
        self.home = home
        self.name = name
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")},
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{backend}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            # Nothing may be downloaded: plugins come from PATH only.
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            # The plugins' `python3` is this virtualenv's, with the project importable.
            "PATH": os.pathsep.join([str(ENGINE_PLUGINS), str(Path(sys.executable).parent), os.environ["PATH"]]),
            "PYTHONPATH": str(checkout),
            "NO_COLOR": "1",
        }

    def run(self, *args: str, check: bool = True) -> Result:
        done = subprocess.run(
            [self.cli, *args, "--non-interactive"],
            cwd=self.checkout,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        result = Result(args, done.returncode, done.stdout, done.stderr)
        if check and result.returncode != 0:
            raise CommandFailed(f"pulumi {' '.join(args)} exited {result.returncode}:\n{result.output}")
        return result

    def operation(self, command: str, *args: str, check: bool = True) -> Result:
        """``pulumi preview|up|refresh`` of the program, excluding what cannot run here."""
        host = subprocess.Popen(
            [sys.executable, "-m", "tests.support.engine_host"],
            cwd=self.checkout,
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert host.stdout is not None
            port = host.stdout.readline().strip()
            assert port.isdigit(), f"the language runtime did not start: {port!r}"
            excludes = [arg for pattern in NOT_RUN for arg in ("--exclude", pattern)]
            return self.run(command, "--client", f"127.0.0.1:{port}", *excludes, *args, check=check)
        finally:
            host.terminate()
            host.wait(timeout=30)

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.run("config", "set", *(["--secret"] if secret else ["--plaintext"]), key, value)

    def another_checkout(self, path: Path, umask: int) -> LocalStack:
        """The same stack from another checkout of the project: same state, same stack file."""
        other = LocalStack(self.cli, copy_project(path, umask), self.backend, self.home, self.name)
        other.config_file.write_text(self.config_file.read_text())
        other.run("stack", "select", self.name)
        return other

    @property
    def config_file(self) -> Path:
        return self.checkout / f"Pulumi.{self.name}.yaml"

    def export(self) -> dict[str, Any]:
        exported: dict[str, Any] = self.run("stack", "export").json()
        return exported

    def outputs(self) -> dict[str, Any]:
        shown: dict[str, Any] = self.run("stack", "output", "--json").json()
        return shown

    def resources(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.export()["deployment"].get("resources") or []
        return found

    def record_unrun_resources(self) -> list[str]:
        """Writes the docker and nomad resources the program declares into the state, as if
        created, with no outputs but the image's digest (STAND_IN_OUTPUTS); returns their
        URNs. What depends on them can then be created: the engine refuses a snapshot in
        which a resource depends on one that an ``--exclude`` left uncreated."""
        self.operation("up", "--yes", "--exclude-dependents")  # the stack and the default providers
        steps = self.operation("preview", "--json", "--show-sames").json()["steps"]
        deployment = self.export()
        resources = deployment["deployment"]["resources"]
        known = {r["urn"]: r for r in resources}
        added = []
        for step in steps:
            new = step.get("newState") or {}
            if step["urn"] in known or new.get("type", "").split(":")[0] not in NOT_RUN_PACKAGES:
                continue
            provider_urn = new["provider"].rsplit("::", 1)[0]
            resources.append(
                {
                    "urn": step["urn"],
                    "custom": True,
                    "id": step["urn"].rsplit("::", 1)[1],
                    "type": new["type"],
                    "inputs": {},
                    "outputs": STAND_IN_OUTPUTS.get(new["type"], {}),
                    "parent": new.get("parent"),
                    "provider": f"{provider_urn}::{known[provider_urn]['id']}",
                    "dependencies": new.get("dependencies", []),
                    "propertyDependencies": new.get("propertyDependencies", {}),
                    # The options the engine records with a created resource, for what destroy does.
                    **{option: new[option] for option in ("protect", "retainOnDelete") if option in new},
                }
            )
            added.append(step["urn"])
        state = self.checkout.parent / f"{self.name}-state.json"
        state.write_text(json.dumps(deployment))
        self.run("stack", "import", "--file", str(state))
        return added
