"""The program under the real Pulumi engine (tests/support/engine.py says what runs and what cannot).

A local stack made from ``Pulumi.dev.yaml`` (the registry from ``TEST_REGISTRY`` when set),
the database URL set with ``pulumi config set --secret``, state in a file backend, against
the real PostgreSQL of tests/conftest.py. Every test works on a copy of the project.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from infra.deadlines import MIGRATOR_ATTEMPTS
from tests.support import unavailable, versions
from tests.support.engine import PROJECT, STAND_IN_DIGEST, LocalStack, Result, copy_project, pulumi_cli
from tests.support.migrator_process import run_migrator
from tests.support.rehearsal_support import scratch_server

STATUS_TYPE = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module")
def cli() -> str:
    found = pulumi_cli()
    if found is None:
        unavailable("the pulumi CLI v3.259.0 is not built: run `bash .ci/tools`")
    assert found is not None
    return found


@dataclass
class Database:
    admin_dsn: str
    names: list[str] = field(default_factory=list)

    def create(self) -> str:
        name = f"engine_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        return conninfo.make_conninfo(self.admin_dsn, dbname=name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
            for name in self.names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def databases(pg_admin_dsn: str) -> Iterator[Database]:
    created = Database(pg_admin_dsn)
    yield created
    created.drop_all()


@dataclass
class Stacks:
    cli: str
    root: Path
    databases: Database

    def new(self, name: str, *, database_url: str | None = None, umask: int = 0o022) -> LocalStack:
        """A stack ``name`` of a fresh checkout, configured as ``Pulumi.dev.yaml`` says, with its own backend."""
        base = self.root / name
        checkout = copy_project(base / "checkout", umask)
        (base / "state").mkdir()
        (base / "home").mkdir()
        stack = LocalStack(self.cli, checkout, base / "state", base / "home", name)
        stack.config_file.write_text((checkout / "Pulumi.dev.yaml").read_text())
        stack.run("stack", "init", name)
        registry = os.environ.get("TEST_REGISTRY")
        if registry:
            stack.set_config("registry", registry)
        stack.set_config("databaseUrl", database_url or self.databases.create(), secret=True)
        return stack


@pytest.fixture(scope="module")
def stacks(cli: str, tmp_path_factory: pytest.TempPathFactory, databases: Database) -> Stacks:
    return Stacks(cli, tmp_path_factory.mktemp("engine"), databases)


@dataclass
class Deployed:
    stack: LocalStack
    database_url: str
    target: int  # the stack's migrateTo: the newest shipped migration
    pending: Path  # a migration of the test's own beyond migrateTo, which stays pending


def deployment_of(stack: LocalStack) -> str:
    """The migrator's deployment the next `up` submits, as the status resource's input shows it."""
    steps = stack.operation("preview", "--json").json()["steps"]
    [status] = [s for s in steps if s["urn"].endswith("::migration-status") and s["op"] != "refresh"]
    return str(status["newState"]["inputs"]["deployment"])


def up_beside_prestart(stack: LocalStack, database_url: str, target: str) -> tuple[Result, CompletedProcess[str]]:
    """`pulumi up` while a stand-in for Nomad's prestart task runs the migrator as the job
    would (`migrate-to <migrateTo>`, with the image, the deployment and an allocation in its
    environment), and, when it fails, as Nomad's reschedules would, until its last attempt:
    the status resource waits for that deployment's verdict."""
    deployment = deployment_of(stack)
    results: list[Result] = []
    upper = threading.Thread(target=lambda: results.append(stack.operation("up", "--yes", check=False)))
    upper.start()
    for attempt in range(1, MIGRATOR_ATTEMPTS + 1):
        prestart = run_migrator(
            "migrate-to",
            target,
            dsn=database_url,
            directory=stack.checkout / "migrations",
            env={
                "MIGRATOR_IMAGE": STAND_IN_DIGEST,
                "MIGRATOR_DEPLOYMENT": deployment,
                "NOMAD_ALLOC_ID": f"engine-test-alloc-{attempt}",
            },
        )
        if prestart.returncode == 0:
            break
    upper.join()
    [result] = results
    return result, prestart


def up_with_prestart(stack: LocalStack, database_url: str, target: int) -> Result:
    result, prestart = up_beside_prestart(stack, database_url, str(target))
    assert prestart.returncode == 0, prestart.stdout + prestart.stderr
    assert result.returncode == 0, result.output
    return result


@pytest.fixture(scope="module")
def deployed(stacks: Stacks, databases: Database) -> Deployed:
    """One stack after ``pulumi up``, shared by the tests below in file order."""
    database_url = databases.create()
    stack = stacks.new("engine", database_url=database_url)
    target = max(int(name.split("_", 1)[0]) for name in migration_files(stack.checkout))
    pending = stack.checkout / "migrations" / f"{target + 1}_engine_pending.sql"
    pending.write_text(
        "-- +goose Up\nCREATE TABLE engine_pending (id int);\n-- +goose Down\nDROP TABLE engine_pending;\n"
    )
    stack.set_config("migrateTo", str(target))
    stack.record_unrun_resources()
    up_with_prestart(stack, database_url, target)
    return Deployed(stack, database_url, target, pending)


def migration_files(checkout: Path) -> list[str]:
    return sorted(p.name for p in (checkout / "migrations").glob("*.sql"))


def update_steps(preview: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of the update itself, without those of a refresh before it (``options.refresh``)."""
    return [step for step in preview["steps"] if step["op"] != "refresh"]


def step_ops(preview: dict[str, Any]) -> dict[str, str]:
    return {step["urn"]: step["op"] for step in update_steps(preview)}


def status_of(stack: LocalStack) -> dict[str, Any]:
    found = [r for r in stack.resources() if r["type"] == STATUS_TYPE and r["urn"].endswith("::migration-status")]
    assert len(found) == 1, found
    return found[0]


def error_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("error:")]


# -- config ---------------------------------------------------------------------------------------


def test_database_url_is_encrypted_in_the_stack_file_and_never_plain_in_the_state(deployed: Deployed) -> None:
    stack, url = deployed.stack, deployed.database_url
    password = conninfo.conninfo_to_dict(url)["password"]
    assert isinstance(password, str)
    assert password
    stack_file = stack.config_file.read_text()
    assert re.search(rf"{PROJECT}:databaseUrl:\s*\n\s*secure: v1:", stack_file), stack_file
    assert password not in stack_file
    assert stack.run("config", "get", "databaseUrl").stdout.strip() == url, "the passphrase decrypts it"

    exported = json.dumps(stack.export())
    assert password not in exported
    assert url not in exported
    status_inputs = status_of(stack)["inputs"]
    assert status_inputs["database_url"].get("ciphertext"), "the engine stores the input as a secret"


def test_missing_database_url_is_the_engines_one_line_error(stacks: Stacks) -> None:
    stack = stacks.new("nodb")
    stack.run("config", "rm", "databaseUrl")
    result = stack.operation("preview", check=False)
    assert result.returncode != 0
    assert error_lines(result.output) == [
        "error: validating stack config: Stack 'nodb' is missing configuration value 'databaseUrl'"
    ], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "key", "value", "schema_type"),
    [("count", "apiCount", "three", "integer"), ("dcs", "datacenters", "5", "array<string>")],
)
def test_config_of_the_wrong_type_is_the_engines_one_line_error(
    stacks: Stacks, name: str, key: str, value: str, schema_type: str
) -> None:
    """Pulumi.yaml's schema, checked by the engine before the program starts."""
    stack = stacks.new(name)
    stack.set_config(key, value)
    result = stack.operation("preview", check=False)
    assert result.returncode != 0
    assert error_lines(result.output) == [
        f"error: validating stack config: Stack '{name}' with configuration key '{key}' must be of type '{schema_type}'"
    ], result.output


def test_config_out_of_range_is_the_programs_one_line_error(stacks: Stacks) -> None:
    stack = stacks.new("zero")
    stack.set_config("apiCount", "0")
    result = stack.operation("preview", check=False)
    assert result.returncode != 0
    lines = error_lines(result.output)
    assert lines, result.output
    assert re.fullmatch(r"error: api-migrations:apiCount must be between \d+ and \d+, got 0", lines[0]), lines
    message = lines[0].removeprefix("error: ")
    # The runtime of tests/support/engine_host.py repeats it as "an unhandled error occurred: <message>".
    assert all(line.endswith(message) for line in lines), lines
    assert "Traceback" not in result.output


# -- preview and up -------------------------------------------------------------------------------


BASE = "-- +goose Up\nCREATE TABLE engine_lint (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE engine_lint;\n"
RISKY = (
    "-- +goose Up\nALTER TABLE engine_lint ADD COLUMN email text NOT NULL;\n"
    "-- +goose Down\nALTER TABLE engine_lint DROP COLUMN email;\n"
)


def test_preview_lists_pending_migrations_and_lint_warnings(stacks: Stacks) -> None:
    stack = stacks.new("lint")
    directory = stack.checkout / "migrations"
    latest = max((int(name.split("_", 1)[0]) for name in migration_files(stack.checkout)), default=20000101000000)
    (directory / f"{latest + 1}_engine_lint_base.sql").write_text(BASE)
    risky = f"{latest + 2}_engine_lint_risky.sql"
    (directory / risky).write_text(RISKY)

    result = stack.operation("preview")
    lines = [line.strip() for line in result.output.splitlines()]
    for name in migration_files(stack.checkout):
        assert f"pending migration: {name}" in lines, result.output
    lint = [line for line in lines if line.startswith("warning: migration lint:")]
    assert any(risky in line and "adding-required-field" in line for line in lint), result.output
    assert not any("engine_lint_base" in line for line in lint), "a clean file has no finding"


def test_second_preview_expects_no_changes(deployed: Deployed) -> None:
    result = deployed.stack.operation("preview", "--expect-no-changes", "--json")
    ops = step_ops(result.json())
    assert ops, "the preview lists the stack's resources"
    assert set(ops.values()) == {"same"}, ops


def test_another_checkout_at_another_path_and_umask_has_no_changes(deployed: Deployed, tmp_path: Path) -> None:
    other = deployed.stack.another_checkout(tmp_path / "elsewhere" / "api-migrations", umask=0o002)
    assert other.checkout != deployed.stack.checkout
    # The same commit: with the test's own migration too, written as umask 002 would.
    copied = other.checkout / "migrations" / deployed.pending.name
    copied.write_bytes(deployed.pending.read_bytes())
    copied.chmod(0o664)
    sample = next(iter(sorted((other.checkout / "migrations").glob("*.sql"))))
    assert sample.stat().st_mode & 0o777 == 0o664
    result = other.operation("preview", "--expect-no-changes", "--json")
    assert set(step_ops(result.json()).values()) == {"same"}


def test_one_changed_byte_changes_the_hash_and_reverting_restores_it(deployed: Deployed) -> None:
    stack = deployed.stack
    before = stack.outputs()["migrationsHash"]
    target = deployed.pending  # a byte of an applied file would make the migrator refuse: "edited"
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"\n")
        preview = stack.operation("preview", "--json").json()
        status = [s for s in update_steps(preview) if s["urn"].endswith("::migration-status")]
        assert [s["op"] for s in status] == ["update"], status
        hashes = [status[0][state]["inputs"]["migrations_hash"] for state in ("oldState", "newState")]
        assert hashes[0] == before != hashes[1], hashes
        up_with_prestart(stack, deployed.database_url, deployed.target)
        changed = stack.outputs()["migrationsHash"]
        assert changed == hashes[1]
    finally:
        target.write_bytes(original)
    up_with_prestart(stack, deployed.database_url, deployed.target)
    assert stack.outputs()["migrationsHash"] == before
    stack.operation("preview", "--expect-no-changes")


# -- what the database has applied ----------------------------------------------------------------


def test_up_waited_for_the_prestart_runs_verdict(deployed: Deployed) -> None:
    outputs = deployed.stack.outputs()
    last = outputs["lastMigratorRun"]
    assert (last["outcome"], last["image"], last["allocation"]) == ("succeeded", STAND_IN_DIGEST, "engine-test-alloc-1")
    assert last["command"] == f"migrate-to {deployed.target}"
    applied = sorted(v for v in versions(deployed.database_url) if v != 0)
    assert outputs["appliedMigrations"] == applied
    assert applied[-1] == deployed.target
    assert outputs["pendingMigrations"] == [deployed.target + 1], "beyond migrateTo stays pending"


def test_refresh_and_up_report_the_migrations_the_database_has_applied(deployed: Deployed) -> None:
    stack = deployed.stack
    migrations = stack.checkout / "migrations"
    rolled_back = run_migrator("down", dsn=deployed.database_url, directory=migrations)  # out of band
    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    applied = sorted(v for v in versions(deployed.database_url) if v != 0)

    before = stack.outputs()["appliedMigrations"]
    stack.operation("refresh", "--yes")
    assert status_of(stack)["outputs"]["applied"] == applied
    assert stack.outputs()["appliedMigrations"] == before != applied, "refresh does not export outputs: up does"
    stack.operation("up", "--yes")  # the job does not change: no wait
    outputs = stack.outputs()
    assert outputs["appliedMigrations"] == applied
    assert outputs["latestMigration"] == (applied[-1] if applied else 0)
    assert deployed.target in outputs["pendingMigrations"]
    restored = run_migrator("up-to", str(deployed.target), dsn=deployed.database_url, directory=migrations)
    assert restored.returncode == 0, restored.stdout + restored.stderr


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the engine's mark of a secret value in the state


def test_the_variables_version_key_is_made_once_and_kept_encrypted(deployed: Deployed) -> None:
    """Item 9: the key of the Variable's keyed version is made by its dynamic provider on the
    first `up`, stored only as a ciphertext, and kept by every later `up`; nothing in the state
    is a plain digest of the database URL or its password."""
    stack, url = deployed.stack, deployed.database_url

    def key_in_state() -> tuple[dict[str, Any], str]:
        [stored] = [r for r in stack.resources() if r["urn"].endswith("::api-secrets-version-key")]
        resources = stack.run("stack", "export", "--show-secrets").json()["deployment"]["resources"]
        [shown] = [r for r in resources if r["urn"] == stored["urn"]]
        decrypted = shown["outputs"]["key"]  # still marked secret, with its plaintext as JSON
        assert set(decrypted) == {SECRET_SIG, "plaintext"}
        return stored, str(json.loads(decrypted["plaintext"]))

    stored, key = key_in_state()
    assert set(stored["outputs"]["key"]) == {SECRET_SIG, "ciphertext"}
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    stack.operation("up", "--yes")
    assert key_in_state()[1] == key, "made once"

    exported = json.dumps(stack.export())
    assert key not in exported
    password = conninfo.conninfo_to_dict(url)["password"]
    assert isinstance(password, str)
    for secret in (url, password):
        for algorithm in sorted(hashlib.algorithms_guaranteed - {"shake_128", "shake_256"}):
            assert hashlib.new(algorithm, secret.encode()).hexdigest() not in exported, algorithm


def test_a_stack_that_still_sets_database_url_version_keeps_working(deployed: Deployed) -> None:
    """The setting is gone from Pulumi.yaml; the engine passes an undeclared key through, and
    the program says to remove it."""
    stack = deployed.stack
    stack.set_config("databaseUrlVersion", "3")
    try:
        result = stack.operation("preview", "--expect-no-changes")
    finally:
        stack.run("config", "rm", "databaseUrlVersion")
    assert (
        "warning: api-migrations:databaseUrlVersion is no longer read: the Nomad Variable is written again"
        " whenever its content changes. Remove it with `pulumi config rm databaseUrlVersion`"
    ) in [line.strip() for line in result.output.splitlines()], result.output


def test_a_failing_migration_fails_up_with_the_migrators_own_words(stacks: Stacks, databases: Database) -> None:
    database_url = databases.create()
    stack = stacks.new("failing", database_url=database_url)
    latest = max(int(name.split("_", 1)[0]) for name in migration_files(stack.checkout))
    broken = f"{latest + 1}_engine_broken.sql"
    (stack.checkout / "migrations" / broken).write_text(
        "-- +goose Up\nCREATE TABLE engine_half (id int);\nSELECT 1 / 0;\n"
    )
    stack.record_unrun_resources()
    result, prestart = up_beside_prestart(stack, database_url, "latest")
    assert prestart.returncode == 1
    assert result.returncode != 0
    failure = [line for line in error_lines(result.output) if "db-migrator failed" in line]
    assert failure, result.output
    # The dynamic provider host puts "Exception calling application: " before it.
    assert f"db-migrator failed in Nomad allocation engine-test-alloc-{MIGRATOR_ATTEMPTS}: " in failure[0]
    assert f"{broken} (up): statement 2 (line 3) failed: ERROR: division by zero" in failure[0]
    print(result.output)  # what `pulumi up` prints, for the record (pytest -rP)


def test_a_rehearsal_that_fails_stops_preview_and_up_before_anything_is_built(
    stacks: Stacks, databases: Database
) -> None:
    """Issue 29: with a scratch server (a role of the test's that may create databases), the
    preview names the drift and refuses a pending file that fails, in the migrator's words;
    `up` then creates nothing at all. The scratch URL is a secret: never in the output or state."""
    database_url = databases.create()
    stack = stacks.new("rehearsed", database_url=database_url)
    scratch = scratch_server(database_url)
    stack.set_config("scratchServerUrl", scratch, secret=True)
    directory = stack.checkout / "migrations"
    latest = max(int(name.split("_", 1)[0]) for name in migration_files(stack.checkout))
    (directory / f"{latest + 1}_engine_audit.sql").write_text("-- +goose Up\nCREATE TABLE engine_audit (id int);\n")
    assert run_migrator("up", dsn=database_url, directory=directory).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE engine_audit")
    broken = f"{latest + 2}_engine_orders.sql"
    (directory / broken).write_text(
        "-- +goose Up\nCREATE TABLE engine_orders (\n    id int,\n"
        "    customer_id int REFERENCES engine_customer (id)\n);\n"
    )

    preview = stack.operation("preview", check=False)
    assert preview.returncode != 0
    lines = [line.strip() for line in preview.output.splitlines()]
    assert "warning: drift: missing table public.engine_audit" in lines, preview.output
    refusal = [line for line in error_lines(preview.output) if "the rehearsal on the scratch server" in line]
    assert refusal, preview.output
    assert refusal[0].endswith(
        f'failed: {broken} (up): statement 1 (line 2) failed: ERROR: relation "engine_customer" does not exist'
        f" (SQLSTATE 42P01); rolled back: nothing of this file was applied and version {latest + 2} was not"
        " recorded. Nothing is deployed until the database or migrations/ is fixed"
    ), refusal
    assert "Traceback" not in preview.output

    up = stack.operation("up", "--yes", check=False)
    assert up.returncode != 0
    assert [r["type"] for r in stack.resources() if r["type"] != "pulumi:pulumi:Stack"] == [], "nothing was created"
    password = conninfo.conninfo_to_dict(scratch)["password"]
    assert isinstance(password, str)
    assert password not in preview.output + up.output + json.dumps(stack.export())
    print(preview.output)  # what `pulumi preview` prints, for the record (pytest -rP) and the README


def test_a_database_only_the_nomad_clients_reach_is_a_warning_and_up_succeeds(stacks: Stacks) -> None:
    """Item 1: the README's own example is a private address; here a closed port on loopback.
    The first `up` of a new stack finishes, within the verdict's short give-up, and says why."""
    stack = stacks.new("unreachable", database_url="postgresql://api:Never-Shown-pw@127.0.0.1:1/api")
    stack.record_unrun_resources()
    result = stack.operation("up", "--yes")
    warnings = [line.strip() for line in result.output.splitlines() if "warning: migration status: " in line]
    assert any(
        line.startswith("warning: migration status: cannot connect to api on 127.0.0.1:1: ")
        and line.endswith(
            "; the migrator's verdict on this deployment was not read, and `pulumi up` did not wait for it:"
            " Nomad's deployment decides (`nomad job status api`)"
        )
        for line in warnings
    ), result.output
    assert "Never-Shown-pw" not in result.output
    outputs = stack.outputs()
    assert (outputs["appliedMigrations"], outputs["pendingMigrations"]) == ([], [])
    assert "lastMigratorRun" not in outputs, "None: no run was read"
    stack.operation("preview", "--expect-no-changes")


# -- promotion ------------------------------------------------------------------------------------


def test_a_stack_deploys_the_image_another_stack_ran_and_only_that(stacks: Stacks, tmp_path: Path) -> None:
    """Item 11: ``promoteFrom`` read through the engine's own StackReference on the same backend:
    the other stack's digest is deployed and no image is declared, and a checkout whose content
    differs is refused before anything changes."""
    source = stacks.new("source")
    source.set_config("reportMigrations", "false")
    source.record_unrun_resources()
    source.operation("up", "--yes")
    ran = source.outputs()
    assert ran["migratorImage"] == STAND_IN_DIGEST

    promoted = LocalStack(source.cli, copy_project(tmp_path / "checkout"), source.backend, source.home, "promoted")
    promoted.config_file.write_text(source.config_file.read_text())
    promoted.run("stack", "init", "promoted")
    promoted.set_config("databaseUrl", "postgresql://unused@127.0.0.1:1/unused", secret=True)
    promoted.set_config("promoteFrom", f"organization/{PROJECT}/source")
    steps = promoted.operation("preview", "--json").json()["steps"]
    types = {step["newState"]["type"] for step in steps if step.get("newState")}
    assert "pulumi:pulumi:StackReference" in types
    assert "docker:index/image:Image" not in types, "nothing is built"
    promoted.record_unrun_resources()
    promoted.operation("up", "--yes")
    outputs = promoted.outputs()
    assert (outputs["migratorImage"], outputs["migrationsHash"]) == (ran["migratorImage"], ran["migrationsHash"])

    migration = next(iter(sorted((promoted.checkout / "migrations").glob("*.sql"))))
    migration.write_bytes(migration.read_bytes() + b"\n")
    refused = promoted.operation("preview", check=False)
    assert refused.returncode != 0
    assert any(
        f"api-migrations:promoteFrom 'organization/{PROJECT}/source' runs the db-migrator image of content"
        f" {ran['migrationsHash']}" in line
        for line in error_lines(refused.output)
    ), refused.output


# -- pulumi destroy -------------------------------------------------------------------------------


def test_destroy_never_asks_nomad_or_docker_to_delete_anything(stacks: Stacks) -> None:
    """Item 10: the job keeps running after ``pulumi destroy``, so what it needs stays: the
    Variable with the database URL, and the image its versions run. The engine skips the
    provider of a resource kept on delete (step.go DeleteStep.Apply); the placeholder providers
    here refuse every call, so a single delete asked of them would fail this destroy."""
    stack = stacks.new("destroy")
    stack.set_config("reportMigrations", "false")
    unrun = stack.record_unrun_resources()
    kept = {r["type"]: r.get("retainOnDelete") for r in stack.resources() if r["urn"] in unrun}
    unrun_types = ["docker:index/image:Image", "nomad:index/job:Job", "nomad:index/variable:Variable"]
    assert kept == dict.fromkeys(unrun_types, True)

    result = stack.run("destroy", "--yes", "--refresh=false")
    assert "refused, the plugin is not built here" not in result.output
    assert stack.resources() == [], "the stack forgot them all"
    print(result.output)  # what `pulumi destroy` prints, for the record (pytest -rP)
