"""The jobspec with the values each stack gives it, against Nomad's own rules.

Nomad validates a job on registration (nomad/structs ``UpdateStrategy.Validate``,
``RestartPolicy.Validate``, ``ReschedulePolicy.Validate``) and parses ``hcl2.vars`` with
jobspec2 in strict mode: an undeclared variable is an error, and a list, map or bool value is
an HCL expression evaluated without variables, where ``${...}`` is an interpolation. Nomad
itself is mocked in every other test; these checks apply its rules to what would be sent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import hcl2
import pytest

from infra import config as stack_config
from infra import jobspec
from infra.api_job import (
    DATABASE_ENV,
    DATABASE_ITEM,
    JOBSPEC,
    SECRETS_VARIABLE_PATH,
    deployed_meta,
    hcl_value,
    reverted,
)
from infra.deadlines import (
    MAX_PARALLEL,
    MIGRATOR_ATTEMPTS,
    RESCHEDULE_ATTEMPTS,
    RESCHEDULE_DELAY_SECONDS,
    STARTUP_SECONDS,
    Deadlines,
)
from infra.jobspec import GROUP, JOB_ID
from infra.task_memory import BASE_MB, FLOOR_MB, MB_PER_MB, migrator_memory
from migrator.durations import parse_duration
from migrator.safety import Safety
from migrator.source import collect
from tests.support import REPO
from tests.support.pulumi_harness import run_program
from tests.support.stack_rules import STACK_FILES, engine_config

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
RESTART_MIN_INTERVAL = 5  # structs.RestartPolicyMinInterval
RESCHEDULE_MIN_DELAY = 5  # structs.ReschedulePolicyMinDelay
RESCHEDULE_MIN_INTERVAL = 15  # structs.ReschedulePolicyMinInterval


def seconds(text: str) -> int:
    match = _DURATION.fullmatch(text)
    assert text, "an empty duration"
    assert match, f"not a duration: {text!r}"
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def spec() -> dict[str, Any]:
    return dict(hcl2.loads(JOBSPEC.read_text(), serialization_options=_OPTIONS))


def group() -> dict[str, Any]:
    return dict(spec()["job"][0][JOB_ID]["group"][0][GROUP])


def tasks() -> dict[str, dict[str, Any]]:
    return {name: body for task in group()["task"] for name, body in task.items()}


def declared_variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in spec()["variable"] for name, body in block.items()}


def stack_variables(path: Path) -> dict[str, str]:
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    job = run_program(REPO / "__main__.py", engine_config(path), stack=name).recorder.one("nomad:index/job:Job")
    return dict(job.inputs["hcl2"]["vars"])


def resolve(value: Any, variables: dict[str, str]) -> Any:
    """The value of a block attribute once the variables are set (the forms the jobspec uses)."""
    if not isinstance(value, str) or not value.startswith("${"):
        return value
    expression = value[2:-1]
    if match := re.fullmatch(r"var\.(\w+)", expression):
        return variables[match[1]]
    if match := re.fullmatch(r"var\.(\w+) > 0", expression):
        return int(variables[match[1]]) > 0
    raise AssertionError(f"unexpected expression {value}")


@pytest.fixture(params=STACK_FILES, ids=lambda p: p.name)
def variables(request: pytest.FixtureRequest) -> dict[str, str]:
    return stack_variables(request.param)


def test_the_jobspec_reads_with_the_types_nomad_reads() -> None:
    """infra/jobspec.py digests what python-hcl2 reads: booleans and numbers as such, a heredoc
    with its lines (python-hcl2 8.1.0 to 8.1.2 read `false` as a string and kept `\\n` escaped).
    A release that reads the jobspec otherwise changes every digest once: a rolling replacement
    of every allocation, and a wait for the migrator's run."""
    migrator = jobspec.tasks(jobspec.parse(JOBSPEC.read_text()))["db-migrator"]
    assert migrator["lifecycle"][0]["sidecar"] is False
    assert migrator["template"][0]["env"] is True
    assert migrator["resources"][0] == {"cpu": 250, "memory": "${var.migrator_memory}"}
    assert migrator["template"][0]["data"].splitlines()[1].startswith("{{- with nomadVar ")


def test_the_program_passes_exactly_the_variables_without_a_default(variables: dict[str, str]) -> None:
    """A jobspec default beside a value the program always passes would be a second source
    of that value, free to drift from it; the defaults left are values no setting changes."""
    declared = declared_variables()
    assert set(variables) <= set(declared), "jobspec2 strict mode refuses an undeclared variable"
    required = {name for name, body in declared.items() if "default" not in body}
    assert required == set(variables)


def test_expression_values_hold_no_interpolation(variables: dict[str, str]) -> None:
    """A list/map/bool value is an HCL expression evaluated without variables: a bare ${...}
    would fail to parse; escaped, it reaches Nomad's runtime interpolation as written."""
    declared = declared_variables()
    for name, value in variables.items():
        if declared[name]["type"] in {"string", "number"}:
            continue
        unescaped = re.sub(r"\$\$\{|%%\{", "", value)
        assert "${" not in unescaped, f"{name}: {value}"
        assert "%{" not in unescaped, f"{name}: {value}"


def test_update_strategy_passes_nomads_validation(variables: dict[str, str]) -> None:
    update = {k: resolve(v, variables) for k, v in group()["update"][0].items()}
    canary = int(update["canary"])
    assert canary >= 0
    assert canary > 0 or not update["auto_promote"], "Auto Promote requires a Canary count"
    healthy, progress = seconds(update["healthy_deadline"]), seconds(update["progress_deadline"])
    assert seconds(update["min_healthy_time"]) < healthy
    assert progress == 0 or healthy < progress
    assert update["auto_revert"] is True
    assert int(update["max_parallel"]) == MAX_PARALLEL, "the deadlines count batches of MAX_PARALLEL"


def viable_attempts(reschedule: dict[str, Any]) -> bool:
    """structs.ReschedulePolicy.viableAttempts for the constant delay function."""
    assert reschedule["delay_function"] == "constant"
    return int(reschedule["attempts"]) * seconds(reschedule["delay"]) <= seconds(reschedule["interval"])


def test_restart_and_reschedule_pass_nomads_validation(variables: dict[str, str]) -> None:
    policies = [group()["restart"][0], tasks()["db-migrator"]["restart"][0]]
    for restart in policies:
        attempts = int(restart["attempts"])
        assert restart["mode"] in {"delay", "fail"}
        assert not (attempts == 0 and restart["mode"] != "fail")
        if "interval" in restart:
            assert seconds(restart["interval"]) >= RESTART_MIN_INTERVAL
            assert attempts * seconds(restart["delay"]) <= seconds(restart["interval"])
    reschedule = {k: resolve(v, variables) for k, v in group()["reschedule"][0].items()}
    assert not (int(reschedule.get("attempts", 0)) > 0 and reschedule.get("unlimited"))
    assert seconds(reschedule["delay"]) >= RESCHEDULE_MIN_DELAY
    assert seconds(reschedule["interval"]) >= RESCHEDULE_MIN_INTERVAL
    assert viable_attempts(reschedule)


def test_a_crashed_api_restarts_in_place_and_a_failed_migration_ends_the_deployment(
    variables: dict[str, str],
) -> None:
    """Item 6: only the migrator fails an allocation (it is never restarted in place); a failed
    one is replaced RESCHEDULE_ATTEMPTS times, every attempt within the interval, then Nomad
    fails the deployment at once (deploymentwatcher shouldFailEarly) and auto_revert puts the
    stable version back. The API task restarts in place for ever (restart mode delay), so a
    crash never spends those attempts; a lost node's allocations are replaced regardless."""
    reschedule = {k: resolve(v, variables) for k, v in group()["reschedule"][0].items()}
    assert reschedule == {
        "unlimited": False,
        "attempts": str(RESCHEDULE_ATTEMPTS),
        "interval": variables["reschedule_interval"],
        "delay": f"{RESCHEDULE_DELAY_SECONDS}s",
        "delay_function": "constant",
    }
    attempts = MIGRATOR_ATTEMPTS
    assert attempts == RESCHEDULE_ATTEMPTS + 1
    # Each attempt fails at the latest at healthy_deadline, and is replaced after the delay.
    per_attempt = seconds(variables["healthy_deadline"]) + RESCHEDULE_DELAY_SECONDS
    assert seconds(reschedule["interval"]) >= RESCHEDULE_ATTEMPTS * per_attempt
    assert group()["restart"][0] == {"attempts": 3, "interval": "5m", "delay": "15s", "mode": "delay"}
    assert "restart" not in tasks()["start"], "the API task uses the group's restart policy"
    assert tasks()["db-migrator"]["restart"][0] == {"attempts": 0, "mode": "fail"}
    update = group()["update"][0]
    assert update["auto_revert"] is True
    assert update["progress_deadline"] != "0"


@pytest.mark.parametrize("minutes", [1, 10, 60, 180, 24 * 60])
@pytest.mark.parametrize(("count", "canary"), [(1, 0), (1, 1), (3, 1), (5, 2)])
def test_deadlines_can_never_cut_a_migration_short(minutes: int, count: int, canary: int) -> None:
    """Item 8: the ordering every derived wait must keep, for any migrationTimeout."""
    waits = Deadlines(minutes * 60, count, canary)
    assert waits.statement_timeout <= waits.run_timeout == waits.migration_seconds
    assert waits.lock_wait + waits.run_timeout < waits.migrator_worst_case
    assert waits.migrator_worst_case + STARTUP_SECONDS <= waits.healthy_deadline - waits.min_healthy_time
    assert waits.min_healthy_time < waits.healthy_deadline < waits.progress_deadline
    assert waits.pulumi_timeout > waits.batches * waits.progress_deadline
    assert waits.batches == (1 + count - canary if canary else count)


def test_the_migrator_runs_with_the_derived_waits(variables: dict[str, str]) -> None:
    migrator = tasks()["db-migrator"]
    args = json.loads(resolve(migrator["config"][0]["args"], variables))
    assert args[:3] == ["migrate-to", "latest", "--lock-timeout"]
    assert args[4] == "--run-timeout"
    env = {k: resolve(v, variables) for k, v in migrator["env"][0].items()}
    assert env["MIGRATOR_STATEMENT_TIMEOUT"] == variables["migrator_statement_timeout"]
    assert env["MIGRATOR_IMAGE"] == variables["migrator_image"]
    assert env["MIGRATOR_DEPLOYMENT"] == variables["migrator_deployment"]
    assert set(env) == {
        "MIGRATOR_DEPLOYMENT",
        "MIGRATOR_IMAGE",
        "MIGRATOR_STATEMENT_TIMEOUT",
        "MIGRATOR_DB_LOCK_TIMEOUT",
        "MIGRATOR_LOCK_RETRIES",
        "MIGRATOR_SECRETS_VERSION",
    }
    lock, run, statement = seconds(args[3]), seconds(args[5]), seconds(variables["migrator_statement_timeout"])
    assert statement <= run
    assert lock + run < seconds(variables["healthy_deadline"])
    # The migrator's own safety defaults, passed as the values it reads back.
    safety = Safety()
    assert parse_duration(variables["migrator_db_lock_timeout"]) == safety.lock_timeout
    assert int(variables["migrator_lock_retries"]) == safety.lock_retries


def test_api_task_is_the_api() -> None:
    """Item 6: e2b's API takes --port and its own environment, secrets, drain time and memory."""
    start = tasks()["start"]
    assert start["config"][0]["args"] == "${var.api_args}"
    assert start["env"] == "${var.api_env}"
    assert "--port" in stack_config.default("apiArgs")
    assert start["kill_timeout"] == "${var.api_kill_timeout}"
    assert start["resources"][0]["memory_max"] == "${var.api_memory_max}"
    assert "PORT" not in str(start.get("env"))
    constraint = group()["dynamic"][0]["constraint"]
    assert constraint["content"][0] == {"operator": "distinct_hosts", "value": "true"}
    assert constraint["for_each"] == "${var.api_distinct_hosts ? [true] : []}"


def test_both_tasks_read_the_one_variable_they_may_read() -> None:
    """Implicit access covers nomad/jobs/<job>, .../<group> and .../<group>/<task>: the group's
    path is readable by both tasks. The migrator checks it exists before reading it."""
    assert f"nomad/jobs/{JOB_ID}/{GROUP}" == SECRETS_VARIABLE_PATH
    for name in ("db-migrator", "start"):
        data = tasks()[name]["template"][0]["data"]
        assert 'nomadVarExists "${var.secrets_path}"' in data
        assert 'nomadVar "${var.secrets_path}"' in data
        assert data.index("nomadVarExists") < data.index('nomadVar "')
        assert tasks()[name]["template"][0]["env"] is True
    # The item and environment names config.py keeps apiEnv/apiSecrets away from.
    assert f"{DATABASE_ENV[0]}={{{{ .{DATABASE_ITEM} | toJSON }}}}" in tasks()["db-migrator"]["template"][0]["data"]
    start = tasks()["start"]["template"][0]["data"]
    assert "range .Tuples" in start
    assert f'eq .K "{DATABASE_ITEM}"' in start
    assert all(f"{env}={{{{ .V | toJSON }}}}" in start for env in DATABASE_ENV)


def test_the_group_records_what_it_runs() -> None:
    """The refreshed job's group meta is what tells a reverted deployment apart (item 9)."""
    assert group()["meta"][0] == {
        "migrator_image": "${var.migrator_image}",
        "migrations_hash": "${var.migrations_hash}",
        "migrator_deployment": "${var.migrator_deployment}",
        "settings_digest": "${var.settings_digest}",
    }
    assert tasks()["db-migrator"]["config"][0]["image"] == "${var.migrator_image}"


def test_a_new_secret_reaches_the_api_by_a_rolling_deployment(variables: dict[str, str]) -> None:
    """Item 9: on a new value, Nomad restarts a task whose template says change_mode "restart"
    after a random wait within the splay (5 s by default), in every allocation at once (client
    taskrunner/template ``onTemplateRendered``); "noop" only renders the file. The Variable's
    version in the db-migrator task's env changes the job instead, and a change of any task
    replaces the whole allocation (scheduler ``tasksUpdated`` compares each task's env) one at
    a time under the update block."""
    for name in ("db-migrator", "start"):
        assert tasks()[name]["template"][0]["change_mode"] == "noop", name
    assert tasks()["db-migrator"]["env"][0]["MIGRATOR_SECRETS_VERSION"] == "${var.secrets_version}"
    assert variables["secrets_version"].isdigit()
    assert int(group()["update"][0]["max_parallel"]) == 1


def test_expression_values_escape_both_kinds_of_template() -> None:
    assert hcl_value(["--port", "${NOMAD_PORT_api}", "%{ if x }"]) == '["--port", "$${NOMAD_PORT_api}", "%%{ if x }"]'
    assert hcl_value({"A": "1"}) == '{"A": "1"}'
    assert hcl_value(True) == "true"


def test_the_deployed_meta_is_read_from_the_api_group_only() -> None:
    """The refreshed job's groups come as dicts from the engine, or as objects."""
    other = {"name": "sidecar", "meta": {"migrator_image": "registry/other@sha256:1"}}
    api = {"name": GROUP, "meta": {"migrator_image": "registry/db-migrator@sha256:2", "settings_digest": "s2"}}
    expected = {"migrator_image": "registry/db-migrator@sha256:2", "settings_digest": "s2"}
    assert deployed_meta([other, api]) == expected
    assert deployed_meta([SimpleNamespace(**other), SimpleNamespace(**api)]) == expected
    assert deployed_meta([{"name": GROUP, "meta": None}]) == {}
    assert deployed_meta([other]) is None
    assert deployed_meta(None) is None


IMAGE, OTHER_IMAGE = "registry/db-migrator@sha256:2", "registry/db-migrator@sha256:1"


@pytest.mark.parametrize(
    ("deployed", "found"),
    [
        (None, None),
        ({}, None),
        ({"migrator_image": IMAGE, "settings_digest": "s" * 64}, None),
        ({"migrator_image": IMAGE}, None),  # deployed by a program before the settings digest
        ({"migrator_image": OTHER_IMAGE}, f"the db-migrator image {OTHER_IMAGE}, not {IMAGE}"),
        (
            {"migrator_image": OTHER_IMAGE, "settings_digest": "t" * 64},
            f"the db-migrator image {OTHER_IMAGE}, not {IMAGE}",
        ),
        (
            {"migrator_image": IMAGE, "settings_digest": "t" * 64},
            "other settings than this stack's (apiImage, apiArgs, apiEnv, apiPort, migrateTo or allowDown:"
            " settings digest tttttttttttt, not ssssssssssss)",
        ),
    ],
)
def test_a_reverted_job_is_told_by_its_image_or_else_its_settings(
    deployed: dict[str, str] | None, found: str | None
) -> None:
    assert reverted(deployed, IMAGE, "s" * 64) == found


def test_the_migrator_s_memory_grows_with_the_largest_file_from_the_floor(tmp_path: Path) -> None:
    small, seed = tmp_path / "00001_small.sql", tmp_path / "00002_seed.sql"
    small.write_text("-- +goose Up\nSELECT 1;\n")
    assert migrator_memory([]) == migrator_memory([small]) == FLOOR_MB
    with seed.open("wb") as out:
        out.truncate(30 * 2**20 + 1)  # bench/memory.py: one INSERT of 22.5 MB peaked at 191 MB
    assert migrator_memory([small, seed]) == BASE_MB + 30 * MB_PER_MB + 1
    assert migrator_memory([seed]) > 191 * 30 / 22.5


def test_the_task_reserves_the_memory_the_program_derives(variables: dict[str, str]) -> None:
    resources = tasks()["db-migrator"]["resources"][0]
    assert resources["memory"] == "${var.migrator_memory}"
    assert int(variables["migrator_memory"]) == migrator_memory(m.path for m in collect(REPO / "migrations"))
