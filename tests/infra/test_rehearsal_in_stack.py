"""The rehearsal and the drift check in the Pulumi program, under mocks, against a real PostgreSQL.

The program runs on a copy of the project whose migrations (whatever ships, then the test's
own) were applied to the test's database; the scratch server is a role of the test's own that
may create databases (tests/support/rehearsal_support.py). A refusal must come before anything is
declared: the recorder then holds no resource at all, so `pulumi up` builds nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from psycopg import conninfo

from infra import rehearsal_check
from infra.config import ConfigError, StackConfig, load
from infra.migration_status import MigratorWouldRefuse
from infra.rehearsal_check import DriftRefused, RehearsalFailed
from infra.verdict import READ_TIMEOUT_SECONDS
from migrator.dsn import describe, parse
from migrator.rehearsal import Rehearsal, rehearse
from migrator.safety import Safety
from migrator.source import collect
from tests.support import Logged, SessionSpy, copy_project, query
from tests.support.cli_runner import run_cli
from tests.support.pulumi_harness import Recorder, Run, run_declarations, run_program
from tests.support.rehearsal_support import SCRATCH_PASSWORD, reading_role, throwaway_databases

SECRET_KEYS = ("api-migrations:databaseUrl", "api-migrations:scratchServerUrl")
DEV = {
    "api-migrations:registry": "localhost:5000",
    "api-migrations:apiImage": "localhost:5000/api:dev-1",
    "api-migrations:allowMutableApiImage": "true",
    "api-migrations:canary": "0",
}
IMAGE = "docker:index/image:Image"
JOB = "nomad:index/job:Job"
OWN = "-- +goose Up\nCREATE TABLE stack_orders (id int PRIMARY KEY, total numeric NOT NULL);\n"
OWN_DOWN = "-- +goose Down\nDROP TABLE stack_orders;\n"


def creating(table: str) -> str:
    """A migration that applies anywhere, and whose Down restores the schema."""
    return f"-- +goose Up\nCREATE TABLE {table} (id int);\n-- +goose Down\nDROP TABLE {table};\n"


class Project:
    """A copy of the project, migrated to the test's database, with files of the test's own."""

    def __init__(self, root: Path, dsn: str, scratch: str) -> None:
        self.program = copy_project(root)
        self.directory = root / "migrations"
        self.dsn = dsn
        self.scratch = scratch
        self.latest = max((m.version for m in collect(self.directory)), default=0)
        self.add(1, "stack_orders", OWN + OWN_DOWN)
        assert run_cli("up", dsn=dsn, directory=self.directory).returncode == 0

    def add(self, offset: int, name: str, body: str) -> str:
        filename = f"{self.latest + offset}_{name}.sql"
        (self.directory / filename).write_text(body)
        return filename

    def config(self, overrides: dict[str, str | None] | None = None) -> dict[str, str]:
        config = {
            **DEV,
            "api-migrations:databaseUrl": self.dsn,
            "api-migrations:reportMigrations": "true",
            "api-migrations:scratchServerUrl": self.scratch,
            **(overrides or {}),
        }
        return {key: value for key, value in config.items() if value is not None}

    def run(
        self, overrides: dict[str, str | None] | None = None, *, preview: bool = True, recorder: Recorder | None = None
    ) -> Run:
        config = self.config(overrides)
        return run_program(
            self.program, config, stack="dev", secret_keys=SECRET_KEYS, preview=preview, recorder=recorder
        )


@pytest.fixture
def project(tmp_path: Path, dsn: str, scratch: str) -> Project:
    return Project(tmp_path / "project", dsn, scratch)


NOTHING = "Nothing is deployed until the database or migrations/ is fixed"
ROLLED_BACK = "rolled back: nothing of this file was applied and version {version} was not recorded"
# What a rehearsal finds, per cause the issue names: the statement, its line, PostgreSQL's words.
FAILING = [
    (
        "missing_column",
        "-- +goose Up\nCREATE INDEX stack_orders_customer ON stack_orders (customer_id);\n",
        'statement 1 (line 2) failed: ERROR: column "customer_id" does not exist (SQLSTATE 42703)',
    ),
    (
        "missing_table",
        "-- +goose Up\nCREATE TABLE stack_lines (\n    id int,\n    order_id int REFERENCES stack_order (id)\n);\n",
        'statement 1 (line 2) failed: ERROR: relation "stack_order" does not exist (SQLSTATE 42P01)',
    ),
    (
        "policy_exists",
        "-- +goose Up\nCREATE POLICY stack_own ON stack_orders USING (true);\n"
        "CREATE POLICY stack_own ON stack_orders USING (true);\n",
        'statement 2 (line 3) failed: ERROR: policy "stack_own" for table "stack_orders" already exists'
        " (SQLSTATE 42710)",
    ),
]


def rehearsal_lines(logged: Logged) -> list[str]:
    """What the program said about the rehearsal and the drift, durations masked."""
    said = [*logged.info, *logged.warn]
    return [re.sub(r"\(\d+(?:\.\d+)?m?s\)", "(T)", line) for line in said if line.startswith(("rehearsal:", "drift:"))]


@pytest.mark.parametrize("case", FAILING, ids=[name for name, _, _ in FAILING])
@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_a_failing_pending_migration_stops_the_program_before_anything_is_declared(
    project: Project, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, str], preview: bool
) -> None:
    name, body, failed = case
    filename = project.add(2, f"stack_{name}", body)
    version = filename.split("_", 1)[0]
    logged = Logged(monkeypatch)
    recorder = Recorder()
    with pytest.raises(RehearsalFailed) as caught:
        project.run(preview=preview, recorder=recorder)
    words = f"{filename} (up): {failed}; {ROLLED_BACK.format(version=version)}"
    server = describe(parse(project.scratch))
    assert str(caught.value) == f"the rehearsal on the scratch server {server} failed: {words}. {NOTHING}"
    assert recorder.resources == [], "no image, no job, nothing at all: `up` builds nothing"
    drift, failure = rehearsal_lines(logged)[:2]
    schemas = r"\(schemas [a-z_, ]*public[a-z_, ]*"
    assert re.fullmatch(rf"drift: none {schemas}, replayed on {re.escape(where(project))}\)", drift), drift
    assert failure == f"rehearsal: FAIL {filename} (T): {words}"
    assert throwaway_databases(project.scratch) == [], "the throwaway database is dropped"
    assert query(project.dsn, "SELECT max(version_id) FROM _migrations") == [(project.latest + 1,)]


def where(project: Project) -> str:
    return f"the scratch server {describe(parse(project.scratch))}"


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_a_file_that_does_not_parse_is_refused_as_the_migrator_refuses_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, preview: bool
) -> None:
    filename = project.add(2, "stack_syntax", "-- +goose Up\nSELECT 1;\nCREATE TABLE stack_broken (id int,);\n")
    Logged(monkeypatch)
    recorder = Recorder()
    with pytest.raises(MigratorWouldRefuse) as caught:
        project.run(preview=preview, recorder=recorder)
    assert type(caught.value) is MigratorWouldRefuse
    assert str(caught.value) == (
        f'the db-migrator task of this image would refuse to run: {filename}:3: syntax error at or near ")":'
        f" PostgreSQL would refuse statement 2 part-way through the run; fix the SQL. {NOTHING}"
    )
    assert recorder.resources == []


def test_a_passing_rehearsal_says_what_it_applied_and_the_program_goes_on(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = project.add(2, "stack_customers", creating("stack_customers"))
    second = project.add(
        3,
        "stack_orders_note",
        "-- +goose Up\nALTER TABLE stack_orders ADD COLUMN note text;\n"
        "-- +goose Down\nALTER TABLE stack_orders DROP COLUMN note;\n",
    )
    logged = Logged(monkeypatch)
    run = project.run()
    lines = rehearsal_lines(logged)
    assert lines[1:] == [
        f"rehearsal: OK   {first} (T)",
        "rehearsal:     down: restores the schema its Up started from",
        f"rehearsal: OK   {second} (T)",
        "rehearsal:     WARNING statement 1 (line 2): AccessExclusiveLock on table public.stack_orders:"
        " reads and writes of it wait until the file commits",
        "rehearsal:     down: restores the schema its Up started from",
        f"rehearsal: passed: 2 pending migration(s) applied on a throwaway database of {where(project)},"
        " dropped afterwards (T)",
    ]
    assert lines[0].startswith("drift: none (schemas ")
    assert (len(run.recorder.of_type(IMAGE)), len(run.recorder.of_type(JOB))) == (1, 1)
    assert throwaway_databases(project.scratch) == []
    assert query(project.dsn, "SELECT max(version_id) FROM _migrations") == [(project.latest + 1,)], "only read"


def drifted(project: Project) -> None:
    """A table created by a migration of the test's own, dropped by hand; a column changed by hand."""
    project.add(2, "stack_audit", "-- +goose Up\nCREATE TABLE stack_audit (id int);\n")
    assert run_cli("up", dsn=project.dsn, directory=project.directory).returncode == 0
    query(project.dsn, "DROP TABLE stack_audit")
    query(project.dsn, "ALTER TABLE stack_orders ALTER COLUMN total TYPE bigint")


DRIFT = [
    "missing column public.stack_audit.id",
    "missing table public.stack_audit",
    "different column public.stack_orders.total: expected 'numeric NOT NULL', found 'bigint NOT NULL'",
]


def test_drift_is_a_warning_naming_each_object(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    drifted(project)
    logged = Logged(monkeypatch)
    run = project.run()
    assert [line for line in logged.warn if line.startswith("drift:")] == [f"drift: {line}" for line in DRIFT]
    assert rehearsal_lines(logged) == [f"drift: {line}" for line in DRIFT], "nothing pending: nothing rehearsed"
    assert len(run.recorder.of_type(JOB)) == 1


def test_fail_on_drift_makes_it_an_error_before_anything_is_declared(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    drifted(project)
    Logged(monkeypatch)
    recorder = Recorder()
    with pytest.raises(DriftRefused) as caught:
        project.run({"api-migrations:failOnDrift": "true"}, preview=False, recorder=recorder)
    message = str(caught.value)
    assert re.fullmatch(
        r"drift: 3 object\(s\) differ from what the applied migrations build \(schemas [a-z_, ]*public[a-z_, ]*\):"
        + re.escape(f" {'; '.join(DRIFT)}. api-migrations:failOnDrift is true. {NOTHING}"),
        message,
    ), message
    assert recorder.resources == []


def test_excluded_schemas_are_not_compared(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    drifted(project)
    logged = Logged(monkeypatch)
    project.run({"api-migrations:driftExcludeSchemas": '["public"]', "api-migrations:failOnDrift": "true"})
    [line] = rehearsal_lines(logged)
    compared = re.fullmatch(rf"drift: none \(schemas (.+), replayed on {re.escape(where(project))}\)", line)
    assert compared is not None, line
    assert "public" not in compared.group(1).split(", ")
    everything = json.dumps(["public", *compared.group(1).split(", ")])
    logged = Logged(monkeypatch)
    project.run({"api-migrations:driftExcludeSchemas": everything})
    assert rehearsal_lines(logged) == [f"drift: none (schemas none, replayed on {where(project)})"]


@pytest.mark.parametrize("value", ['"public"', "[1]", '[""]'])
def test_excluded_schemas_must_be_a_list_of_names(project: Project, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        project.run({"api-migrations:driftExcludeSchemas": value})
    shown = json.loads(value)
    assert str(caught.value) == f"api-migrations:driftExcludeSchemas must be a list of schema names, got {shown!r}"


NO_SCRATCH = "no scratch server (api-migrations:scratchServerUrl is not set)"
NOT_READ = "api-migrations:reportMigrations is false, so the database is not read from here"
NOT_CHECKED = ", so pending migrations are not rehearsed and drift is not checked"
FAIL_ON_NOTHING = ": api-migrations:failOnDrift has no drift check to act on"
OFF = [
    ({"api-migrations:scratchServerUrl": None}, f"rehearsal: off: {NO_SCRATCH}{NOT_CHECKED}"),
    ({"api-migrations:scratchServerUrl": ""}, f"rehearsal: off: {NO_SCRATCH}{NOT_CHECKED}"),
    ({"api-migrations:reportMigrations": "false"}, f"rehearsal: off: {NOT_READ}{NOT_CHECKED}"),
    (
        {"api-migrations:scratchServerUrl": None, "api-migrations:failOnDrift": "true"},
        f"rehearsal: off: {NO_SCRATCH}{FAIL_ON_NOTHING}",
    ),
    (
        {"api-migrations:reportMigrations": "false", "api-migrations:failOnDrift": "true"},
        f"rehearsal: off: {NOT_READ}{FAIL_ON_NOTHING}",
    ),
]


@pytest.mark.parametrize(("overrides", "line"), OFF)
def test_without_a_scratch_server_one_line_says_the_rehearsal_is_off(
    project: Project, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str | None], line: str
) -> None:
    drifted(project)
    project.add(3, "stack_broken", FAILING[0][1])
    logged = Logged(monkeypatch)
    run = project.run(overrides)
    assert rehearsal_lines(logged) == [line]
    level = logged.warn if overrides.get("api-migrations:failOnDrift") else logged.info
    assert line in level, "a warning only when the stack asked for drift to stop it"
    assert len(run.recorder.of_type(JOB)) == 1, "nothing rehearsed, nothing refused"


def test_a_scratch_server_stored_in_plain_text_is_refused(project: Project) -> None:
    config = {**DEV, "api-migrations:databaseUrl": project.dsn, "api-migrations:scratchServerUrl": project.scratch}
    with pytest.raises(ConfigError) as caught:
        run_program(project.program, config, stack="dev")
    assert str(caught.value) == (
        "api-migrations:scratchServerUrl is stored in plain text: set it with"
        " `pulumi config set --secret scratchServerUrl <url>`"
    )


def test_the_scratch_servers_password_is_nowhere_in_the_state_or_the_logs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    drifted(project)
    project.add(3, "stack_broken", FAILING[0][1])
    logged = Logged(monkeypatch)
    recorder = Recorder()
    with pytest.raises(RehearsalFailed) as refused:
        project.run(recorder=recorder)
    project.add(3, "stack_broken", creating("stack_fine"))  # the same file, fixed
    run = project.run()
    everything = json.dumps([[r.inputs, r.outputs] for r in run.recorder.resources], default=str)
    said = json.dumps([logged.info, logged.warn, str(refused.value), run.exports], default=str)
    loaded: list[StackConfig] = []
    run_declarations(lambda: loaded.append(load()), project.config(), stack="dev", secret_keys=SECRET_KEYS)
    said += repr(loaded)  # as a traceback or a failing test would print the config
    assert logged.warn, "drift was warned about"
    assert logged.info, "the rehearsal was reported"
    assert SCRATCH_PASSWORD not in everything + said
    assert project.scratch not in everything + said


def test_servers_that_cannot_be_reached_are_a_redacted_warning(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = conninfo.make_conninfo(project.scratch, port="1", connect_timeout="2")
    logged = Logged(monkeypatch)
    run = project.run({"api-migrations:scratchServerUrl": closed})
    [line] = rehearsal_lines(logged)
    assert line.startswith("rehearsal: not run: cannot connect to ")
    assert SCRATCH_PASSWORD not in line
    assert len(run.recorder.of_type(JOB)) == 1
    database = conninfo.make_conninfo(project.dsn, port="1", password="Target-Pw-1", connect_timeout="2")
    logged = Logged(monkeypatch)
    project.run({"api-migrations:databaseUrl": database})
    [line] = rehearsal_lines(logged)
    assert line.startswith("rehearsal: not run: cannot connect to ")
    assert "Target-Pw-1" not in json.dumps([logged.info, logged.warn])


def test_applied_migrations_that_do_not_replay_leave_drift_unchecked(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that relied on a table made by hand applied on the target, and cannot replay."""
    query(project.dsn, "CREATE TABLE stack_handmade (id int PRIMARY KEY)")
    filename = project.add(
        2, "stack_refs", "-- +goose Up\nCREATE TABLE stack_refs (id int REFERENCES stack_handmade);\n"
    )
    assert run_cli("up", dsn=project.dsn, directory=project.directory).returncode == 0
    logged = Logged(monkeypatch)
    run = project.run()
    version = filename.split("_", 1)[0]
    not_checked = (
        f"drift: not checked: the applied migrations did not replay on {where(project)}: {filename} (up):"
        ' statement 1 (line 2) failed: ERROR: relation "stack_handmade" does not exist (SQLSTATE 42P01);'
        f" {ROLLED_BACK.format(version=version)}"
    )
    assert rehearsal_lines(logged) == [not_checked]
    assert len(run.recorder.of_type(JOB)) == 1
    pending = project.add(3, "stack_pending", creating("stack_pending"))
    logged = Logged(monkeypatch)
    run = project.run()
    assert rehearsal_lines(logged) == [
        not_checked,
        f"rehearsal: not run: {pending} were not rehearsed, since the applied migrations did not replay",
    ]
    assert len(run.recorder.of_type(JOB)) == 1, "a replay that fails refuses nothing: the files were not tried"


def test_only_the_files_up_to_migrate_to_are_rehearsed(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    fine = project.add(2, "stack_fine", creating("stack_fine"))
    project.add(3, "stack_broken", FAILING[0][1])
    logged = Logged(monkeypatch)
    run = project.run({"api-migrations:migrateTo": fine.split("_", 1)[0]})
    assert [line for line in rehearsal_lines(logged) if not line.startswith("drift:")] == [
        f"rehearsal: OK   {fine} (T)",
        "rehearsal:     down: restores the schema its Up started from",
        f"rehearsal: passed: 1 pending migration(s) applied on a throwaway database of {where(project)},"
        " dropped afterwards (T)",
    ]
    assert len(run.recorder.of_type(JOB)) == 1


def test_rows_of_the_target_that_would_fail_a_pending_file_stop_the_program(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The throwaway database has none of the target's rows: the data checks read them."""
    query(project.dsn, "INSERT INTO stack_orders VALUES (1, 10), (2, 10)")
    unique = project.add(2, "stack_unique", "-- +goose Up\nCREATE UNIQUE INDEX stack_total ON stack_orders (total);\n")
    Logged(monkeypatch)
    recorder = Recorder()
    with pytest.raises(RehearsalFailed) as caught:
        project.run(recorder=recorder)
    assert str(caught.value) == (
        f"the rehearsal on {where(project)} failed: {unique}: statement 1 (line 2): stack_orders: UNIQUE INDEX"
        f" stack_total: would fail: 1 key value(s) are held by more than one row. {NOTHING}"
    )
    assert recorder.resources == []


def test_statements_are_rehearsed_with_the_db_migrator_tasks_statement_timeout(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's statement_timeout is the stack's migrationTimeout (infra/deadlines.py)."""
    given: list[Safety] = []

    def spied(*args: Any, **kwargs: Any) -> Rehearsal:
        given.append(kwargs["safety"])
        return rehearse(*args, **kwargs)

    monkeypatch.setattr(rehearsal_check, "rehearse", spied)
    Logged(monkeypatch)
    project.run({"api-migrations:migrationTimeout": "90s"})
    assert given == [Safety(statement_timeout=90.0)]


def test_what_the_scratch_server_may_lack_is_said_in_the_refusal(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = project.add(2, "stack_grant", "-- +goose Up\nGRANT SELECT ON stack_orders TO stack_reader;\n")
    Logged(monkeypatch)
    with pytest.raises(RehearsalFailed) as caught:
        project.run()
    version = grant.split("_", 1)[0]
    assert str(caught.value) == (
        f"the rehearsal on {where(project)} failed: {grant} (up): statement 1 (line 2) failed: ERROR: role"
        f' "stack_reader" does not exist (SQLSTATE 42704); {ROLLED_BACK.format(version=version)}. Rehearsal'
        " limitation: the scratch server has no role stack_reader: roles belong to a whole server, and the"
        ' rehearsal creates none. Create it there as the target\'s server has it (CREATE ROLE "stack_reader"'
        f" NOLOGIN), then rehearse again. {NOTHING}"
    )


def test_a_replay_that_fails_for_the_scratch_server_says_what_it_lacks(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role granted to by an applied migration, gone from the server since."""
    role = f"stack_gone_{conninfo.conninfo_to_dict(project.dsn)['dbname']}"
    query(project.dsn, f"CREATE ROLE {role} NOLOGIN")
    grant = project.add(2, "stack_grant", f"-- +goose Up\nGRANT SELECT ON stack_orders TO {role};\n")
    assert run_cli("up", dsn=project.dsn, directory=project.directory).returncode == 0
    query(project.dsn, f"REVOKE SELECT ON stack_orders FROM {role}")
    query(project.dsn, f"DROP ROLE {role}")
    logged = Logged(monkeypatch)
    project.run()
    version = grant.split("_", 1)[0]
    assert rehearsal_lines(logged) == [
        f"drift: not checked: the applied migrations did not replay on {where(project)}: {grant} (up): statement 1"
        f' (line 2) failed: ERROR: role "{role}" does not exist (SQLSTATE 42704);'
        f" {ROLLED_BACK.format(version=version)}."
        f" Rehearsal limitation: the scratch server has no role {role}: roles belong to a whole server, and the"
        f' rehearsal creates none. Create it there as the target\'s server has it (CREATE ROLE "{role}"'
        " NOLOGIN), then rehearse again"
    ]


def test_the_target_is_read_in_read_only_transactions_with_the_short_connect_timeout(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role that may only read rehearses too; the session is read-only whoever the role is."""
    spy = SessionSpy(monkeypatch)
    spy.watch(rehearsal_check)
    project.add(2, "stack_fine", creating("stack_fine"))
    logged = Logged(monkeypatch)
    project.run({"api-migrations:databaseUrl": reading_role(project.dsn)})
    assert spy.sessions == [{"read_only": "on", "connect_timeout": str(READ_TIMEOUT_SECONDS)}]
    assert rehearsal_lines(logged)[-1].startswith("rehearsal: passed: 1 pending migration(s) applied")
    assert query(project.dsn, "SELECT max(version_id) FROM _migrations") == [(project.latest + 1,)]
