"""The lifecycle suite: what Nomad runs over a job's life, replayed step by step on a real
PostgreSQL, with the real migrator command of each job version.

Each job version is what ``pulumi up`` submits for a stack: the program runs under Pulumi's
mocks (Nomad cannot run here) on a project of its own, whose ``migrations/`` is what that
version's image carries, with the checksum manifest the Dockerfile writes. Its db-migrator
task is read from the jobspec with the variables the program passed, as Nomad would: the
task's arguments and environment, the database URL its template renders, the image's own
environment. Nomad's part is played by hand, from its source (Nomad 1.7-1.10): an allocation
runs that command once, each in a process of its own; a reschedule, a drain, an auto-revert
and ``nomad job revert`` all run some version's task again in a new allocation. The status
resource's provider is called as the engine calls it: ``diff``, then ``create`` or
``update(id, the outputs in the state, the new inputs)``, the state kept only when it
succeeds.

Every step asserts the database, the migrator's exit code and what the status resource says.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from infra import verdict
from infra.api_job import JOBSPEC, DeploymentReverted
from infra.migration_status import MigrationStatusProvider
from infra.verdict import MigrationVerdictError
from tests.support import Logged, copy_project, query, rollback_done, table_file, tables, versions
from tests.support.goose_interop import Tools
from tests.support.migrator_process import run_migrator
from tests.support.pulumi_harness import SECRET_SIG, Recorder, run_program

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
API_IMAGE = "localhost:5000/api@sha256:" + "a" * 64
FILES = {
    "00001_a.sql": table_file("a"),
    "00002_b.sql": table_file("b"),
    "00003_c.sql": table_file("c"),
    # Fails while the API has a row it does not allow; a retry after the API fixed it succeeds.
    "00004_check.sql": "-- +goose Up\nALTER TABLE a ADD CONSTRAINT a_positive CHECK (id > 0);\n"
    "-- +goose Down\nALTER TABLE a DROP CONSTRAINT a_positive;\n",
    "00005_broken.sql": "-- +goose Up\nSELECT 1 / 0;\n",
}
BROKEN = (
    "00005_broken.sql (up): statement 1 (line 2) failed: ERROR: division by zero (SQLSTATE 22012); rolled back:"
    " nothing of this file was applied and version 5 was not recorded"
)
NEWER_IMAGE = (
    "migrator: the database is ahead of these migrations: version(s) 3 applied beyond the newest file (2), by a"
    " newer image; nothing of them to apply or roll back"
)


def the_migrator_task(variables: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The db-migrator task's arguments and environment, read from the jobspec with
    ``variables`` as Nomad's HCL2 parser evaluates them (a list variable is an HCL expression)."""
    spec = hcl2.loads(JOBSPEC.read_text(), serialization_options=_OPTIONS)
    group = spec["job"][0]["api"]["group"][0]["api-service"]
    task = next(body for block in group["task"] for name, body in block.items() if name == "db-migrator")

    def value(expression: str) -> str:
        found = re.fullmatch(r"\$\{var\.(\w+)\}", expression)
        return variables[found[1]] if found else expression

    args = json.loads(value(task["config"][0]["args"]).replace("$${", "${"))
    return args, {name: value(expression) for name, expression in task["env"][0].items()}


@dataclass
class JobVersion:
    """A version of the job ``pulumi up`` submits, and the image its db-migrator task runs."""

    image: Path  # the project: migrations/ and the checksum manifest, as the image carries them
    variables: dict[str, str]
    status_inputs: dict[str, Any]
    program_warnings: list[str]

    @property
    def deployment(self) -> str:
        return self.variables["migrator_deployment"]

    def run(self, dsn: str, allocation: str) -> subprocess.CompletedProcess[str]:
        """One allocation's db-migrator task: its command, the environment the jobspec gives
        it, the database URL its template renders and the image's own environment."""
        args, env = the_migrator_task(self.variables)
        env |= {
            "NOMAD_ALLOC_ID": allocation,
            "MIGRATOR_CHECKSUMS": str(self.image / "migrations.sha256"),
        }
        return run_migrator(*args, dsn=dsn, directory=self.image / "migrations", env=env)


def unwrapped(value: Any) -> Any:
    """A property as the engine hands it to a dynamic provider: secrets as their values."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return value["value"]
        return {key: unwrapped(item) for key, item in value.items()}
    return value


@dataclass
class Stack:
    """One stack over time: its job versions, and its status resource as the engine keeps it."""

    root: Path
    dsn: str
    monkeypatch: pytest.MonkeyPatch
    state: dict[str, Any] | None = None
    provider: MigrationStatusProvider = field(default_factory=MigrationStatusProvider)

    def version(self, name: str, files: list[str], *, nomad: Recorder | None = None, **config: str) -> JobVersion:
        """``pulumi up`` of a stack whose checkout holds ``files`` (the image's migrations)."""
        program = copy_project(self.root / name)
        migrations = program.parent / "migrations"
        for stale in migrations.glob("*.sql"):
            stale.unlink()
        for file in files:
            (migrations / file).write_text(FILES[file])
        # As the Dockerfile writes it: `sha256sum -- *.sql`.
        (program.parent / "migrations.sha256").write_text(
            "".join(f"{hashlib.sha256(FILES[f].encode()).hexdigest()}  {f}\n" for f in sorted(files))
        )
        settings = {
            "api-migrations:registry": "localhost:5000",
            "api-migrations:apiImage": API_IMAGE,
            "api-migrations:canary": "0",
            "api-migrations:databaseUrl": self.dsn,
            "api-migrations:reportMigrations": "true",
            **{f"api-migrations:{key}": value for key, value in config.items()},
        }
        logged = Logged(self.monkeypatch)
        run = run_program(program, settings, stack="staging", recorder=nomad)
        status = next(r for r in run.recorder.of_type("pulumi-python:dynamic:Resource") if r.name == "migration-status")
        inputs = {k: unwrapped(v) for k, v in status.inputs.items() if k != "__provider"}
        variables = dict(run.recorder.one("nomad:index/job:Job").inputs["hcl2"]["vars"])
        return JobVersion(program.parent, variables, inputs, logged.warn)

    def up(self, version: JobVersion) -> dict[str, Any]:
        """The status resource's step of ``pulumi up``, as the engine takes it."""
        news = version.status_inputs
        if self.state is None:
            outs = self.provider.create(news).outs
        elif not self.provider.diff("migration-status", self.state, news).changes:
            return self.state
        else:
            outs = self.provider.update("migration-status", self.state, news).outs
        assert outs is not None
        self.state = outs
        return outs


@pytest.fixture
def stack(tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    return Stack(tmp_path, dsn, monkeypatch)


def decided_by(outs: dict[str, Any]) -> tuple[str, str]:
    return outs["last_run"]["allocation"], outs["last_run"]["outcome"]


def finished(thread: threading.Thread) -> bool:
    """A guard against a verdict that waits for a run that never comes: it would block for
    hours (the real deadlines), so the step is run in a thread given a minute."""
    thread.join(60)
    return not thread.is_alive()


# -- deploy v1, v2; Nomad reverts, reschedules and drains v1 ------------------------------------


def test_an_older_version_nomad_runs_again_finds_the_database_ahead_and_applies_nothing(stack: Stack, dsn: str) -> None:
    v1 = stack.version("v1", ["00001_a.sql", "00002_b.sql"])
    first = v1.run(dsn, "v1-alloc-1")
    assert first.returncode == 0, first.stderr
    assert versions(dsn) == [0, 1, 2]
    outs = stack.up(v1)
    assert decided_by(outs) == ("v1-alloc-1", "succeeded")
    assert (outs["applied"], outs["pending"], outs["error"]) == ([1, 2], [], None)

    v2 = stack.version("v2", ["00001_a.sql", "00002_b.sql", "00003_c.sql"])
    assert v2.deployment != v1.deployment
    assert v2.run(dsn, "v2-alloc-1").returncode == 0
    assert versions(dsn) == [0, 1, 2, 3]
    assert decided_by(stack.up(v2)) == ("v2-alloc-1", "succeeded")

    # v2 fails its health checks: auto_revert submits v1's job again; a reschedule, a node
    # drain and `nomad job revert` each run v1's task again in a new allocation.
    for allocation in ("v1-auto-revert", "v1-rescheduled", "v1-drained", "v1-job-revert"):
        again = v1.run(dsn, allocation)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [NEWER_IMAGE, "migrator: no migrations to run. current version: 3"]
    assert versions(dsn) == [0, 1, 2, 3]
    assert "c" in tables(dsn)
    runs = query(dsn, "SELECT allocation, outcome, deployment FROM _migrations_runs ORDER BY id DESC LIMIT 4")
    assert runs == [(f"v1-{what}", "succeeded", v1.deployment) for what in ("job-revert", "drained", "rescheduled",
                                                                            "auto-revert")]  # fmt: skip

    # goose's own up, with v1's files on that database, finds nothing to do either.
    goose = Tools(dsn, v1.image / "migrations").goose("up")
    assert goose.returncode == 0, goose.stderr
    assert "goose: no migrations to run. current version: 3" in goose.stderr

    # The next `pulumi up` of v2 reads, after the refresh, that Nomad runs v1: it fails saying so.
    reverted = Recorder(nomad_runs=v1.variables["migrator_image"], nomad_runs_settings=v1.variables["settings_digest"])
    with pytest.raises(DeploymentReverted, match="its last deployment failed and Nomad reverted it"):
        stack.version("v2-again", ["00001_a.sql", "00002_b.sql", "00003_c.sql"], nomad=reverted)
    # Its status resource did not change: nothing to wait for; it reports the database as it is.
    assert stack.up(v2)["applied"] == [1, 2, 3]


def test_an_api_only_deployment_nomad_reverted_is_not_reported_as_success(stack: Stack, dsn: str) -> None:
    """Item 5: a bad apiImage that Nomad reverted leaves the migrator's task as it was; the
    group's meta says which settings Nomad runs."""
    files = ["00001_a.sql"]
    good = stack.version("good", files)
    assert good.run(dsn, "good-alloc").returncode == 0
    bad = stack.version("bad", files, apiImage="localhost:5000/api@sha256:" + "b" * 64)
    assert bad.deployment == good.deployment, "the migrator runs what it ran"
    assert bad.variables["settings_digest"] != good.variables["settings_digest"]
    runs_good_settings = Recorder(nomad_runs_settings=good.variables["settings_digest"])
    with pytest.raises(DeploymentReverted) as raised:
        stack.version("bad-again", files, nomad=runs_good_settings, apiImage="localhost:5000/api@sha256:" + "b" * 64)
    assert "runs other settings than this stack's (apiImage, apiArgs, apiEnv, apiPort, migrateTo or allowDown" in (
        str(raised.value)
    )


# -- a rollback version, rescheduled after a later forward deployment --------------------------


def test_a_rollback_runs_once_even_when_nomad_runs_its_version_again(stack: Stack, dsn: str) -> None:
    files = ["00001_a.sql", "00002_b.sql", "00003_c.sql"]
    forward = stack.version("forward", files)
    assert forward.run(dsn, "forward-1").returncode == 0
    stack.up(forward)

    rollback = stack.version("rollback", files, migrateTo="2", allowDown="true")
    args, _ = the_migrator_task(rollback.variables)
    assert args == [
        "migrate-to", "2", "--lock-timeout", "3600s", "--run-timeout", "3600s",
        "--allow-down", "--rollback-id", "rollback-request-id",
    ]  # fmt: skip
    assert "rollback: 00003_c.sql statement 1 (line 4): DROP TABLE c;" in rollback.program_warnings, "preview lists it"
    ran = rollback.run(dsn, "rollback-1")
    assert ran.returncode == 0, ran.stderr
    rolled_back, final = ran.stdout.splitlines()
    assert re.fullmatch(r"OK   00003_c\.sql \(\d+\.\d\dms\)", rolled_back), rolled_back
    assert final == "migrator: successfully migrated database to version: 2"
    assert versions(dsn) == [0, 1, 2]
    assert decided_by(stack.up(rollback)) == ("rollback-1", "succeeded")

    later = stack.version("later", files)  # migrateTo latest again, allowDown false
    assert later.deployment == forward.deployment
    assert later.run(dsn, "later-1").returncode == 0
    assert versions(dsn) == [0, 1, 2, 3]

    # Nomad runs the rollback's version again (a reschedule, `nomad job revert` to it): its
    # rollback completed once, so nothing is rolled back.
    again = rollback.run(dsn, "rollback-rescheduled")
    assert again.returncode == 0, again.stderr
    notice, final = again.stdout.splitlines()
    assert re.fullmatch("migrator: " + rollback_done("rollback-request-id", 2, "3"), notice), notice
    assert final == "migrator: no migrations to run. current version: 3"
    assert versions(dsn) == [0, 1, 2, 3]
    assert "c" in tables(dsn)

    # `pulumi preview` of the rollback's settings says so instead of listing Down statements.
    preview = stack.version("rollback-preview", files, migrateTo="2", allowDown="true")
    assert not [w for w in preview.program_warnings if w.startswith("rollback: ")]
    said = f"migrateTo 2: {notice.removeprefix('migrator: ')}. To roll back to 2 again, `pulumi up --replace` the"
    assert [w for w in preview.program_warnings if w.startswith("migrateTo 2: ")] == [
        f"{said} rollback request (`pulumi stack --show-urns`)"
    ]


# -- a failed migrator, retried by Nomad ---------------------------------------------------------


def test_a_failure_nomad_retried_into_success_is_a_success(stack: Stack, dsn: str) -> None:
    base = ["00001_a.sql", "00002_b.sql", "00003_c.sql"]
    v3 = stack.version("v3", base)
    assert v3.run(dsn, "v3-1").returncode == 0
    stack.up(v3)
    query(dsn, "INSERT INTO a VALUES (0)")  # the API's row that the next migration does not allow

    v4 = stack.version("v4", [*base, "00004_check.sql"])
    failed = v4.run(dsn, "v4-1")
    assert failed.returncode == 1
    assert "00004_check.sql (up): statement 1 (line 2) failed: ERROR: check constraint" in failed.stderr
    assert versions(dsn) == [0, 1, 2, 3]

    outcome: list[dict[str, Any] | BaseException] = []

    def up() -> None:
        try:
            outcome.append(stack.up(v4))
        except BaseException as exc:  # reported below, not lost in the thread
            outcome.append(exc)

    waiting = threading.Thread(target=up)
    waiting.start()  # the verdict waits: Nomad replaces the failed allocation
    query(dsn, "DELETE FROM a WHERE id = 0")  # the API fixed its row
    retried = v4.run(dsn, "v4-2")
    assert retried.returncode == 0, retried.stderr
    assert finished(waiting)
    [outs] = outcome
    assert isinstance(outs, dict), outs
    assert decided_by(outs) == ("v4-2", "succeeded")
    assert outs["applied"] == [1, 2, 3, 4]


def test_a_migration_that_keeps_failing_fails_up_at_the_last_attempt_and_the_revert_applies_nothing(
    stack: Stack, dsn: str
) -> None:
    base = ["00001_a.sql", "00002_b.sql"]
    good = stack.version("good", base)
    assert good.run(dsn, "good-1").returncode == 0
    stack.up(good)
    before = stack.state

    broken = stack.version("broken", [*base, "00005_broken.sql"])
    # The first allocation and the two that replace it (reschedule attempts), each the same failure.
    for attempt in (1, 2, 3):
        result = broken.run(dsn, f"broken-{attempt}")
        assert result.returncode == 1
        assert result.stderr.strip() == f"migrator: error: {BROKEN}"
    with pytest.raises(MigrationVerdictError) as raised:
        stack.up(broken)
    assert str(raised.value) == f"db-migrator failed in Nomad allocation broken-3: {BROKEN}"
    assert stack.state is before, "a failed update leaves the state as it was"

    # Nomad fails the deployment at once and reverts: the stable version's migrator has nothing to do.
    reverted = good.run(dsn, "good-revert")
    assert reverted.returncode == 0
    assert reverted.stdout.strip() == "migrator: no migrations to run. current version: 2"
    assert versions(dsn) == [0, 1, 2]
    # The next `pulumi up` of the broken version decides at once from the runs already recorded.
    with pytest.raises(MigrationVerdictError, match="in Nomad allocation broken-3: "):
        stack.up(broken)


# -- the status resource's create and update, as the engine calls them ----------------------------


def test_an_up_after_an_interrupted_one_decides_at_once_from_the_recorded_runs(stack: Stack, dsn: str) -> None:
    v1 = stack.version("v1", ["00001_a.sql"])
    assert v1.run(dsn, "v1-1").returncode == 0
    stack.up(v1)
    v2 = stack.version("v2", ["00001_a.sql", "00002_b.sql"])
    # `pulumi up` of v2 was interrupted (Ctrl-C, a CI timeout) while Nomad ran v2's task: the
    # engine kept the status resource's state of v1.
    assert v2.run(dsn, "v2-1").returncode == 0
    outcome: list[dict[str, Any]] = []
    again = threading.Thread(target=lambda: outcome.append(stack.up(v2)))
    again.start()
    assert finished(again)
    assert decided_by(outcome[0]) == ("v2-1", "succeeded")


def test_a_change_that_leaves_the_migrators_task_as_it_was_waits_for_nothing(stack: Stack, dsn: str) -> None:
    files = ["00001_a.sql"]
    v1 = stack.version("v1", files)
    assert v1.run(dsn, "v1-1").returncode == 0
    stack.up(v1)
    scaled = stack.version("scaled", files, apiCount="3", apiDistinctHosts="true", apiImage=API_IMAGE[:-1] + "c")
    assert scaled.deployment == v1.deployment
    assert scaled.status_inputs != v1.status_inputs, "an update of the status resource, then"
    outcome: list[dict[str, Any]] = []
    update = threading.Thread(target=lambda: outcome.append(stack.up(scaled)))
    update.start()
    assert finished(update), "Nomad starts no migrator for it: nothing to wait for"
    assert decided_by(outcome[0]) == ("v1-1", "succeeded"), "the newest run, as it is"


def test_an_unreachable_database_is_a_warning_and_never_fails_up(
    stack: Stack, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: a database only the Nomad clients reach (a closed port on loopback here)."""
    monkeypatch.setattr(verdict, "READ_GIVE_UP_SECONDS", 2.0)
    monkeypatch.setattr(verdict, "POLL_SECONDS", 0.2)
    v1 = stack.version("v1", ["00001_a.sql"])
    closed = "postgresql://api:Unreachable-pw@127.0.0.1:1/api"
    stack.state = None
    outs = stack.up(JobVersion(v1.image, v1.variables, {**v1.status_inputs, "database_url": closed}, []))
    assert (outs["applied"], outs["pending"], outs["last_run"]) == ([], [], None)
    assert outs["error"].startswith("cannot connect to api on 127.0.0.1:1: ")
    assert outs["error"].endswith(
        "; the migrator's verdict on this deployment was not read, and `pulumi up` did not wait for it: Nomad's"
        " deployment decides (`nomad job status api`)"
    )
    assert "Unreachable-pw" not in outs["error"]
    v2 = stack.version("v2", ["00001_a.sql", "00002_b.sql"])
    updated = stack.up(JobVersion(v2.image, v2.variables, {**v2.status_inputs, "database_url": closed}, []))
    assert updated["error"] == outs["error"]
    assert stack.state is updated, "the engine keeps the new inputs: the next up does not wait again"
