"""The two digests of infra/jobspec.py, on the real jobspec with each stack's values.

The migrator's deployment changes exactly when what the db-migrator task runs changes (the
status resource waits for a verdict then, and only then); the settings digest changes exactly
with what makes Nomad replace allocations (scheduler ``tasksUpdated``), so that carrying it
in the group's meta replaces nothing by itself. Neither changes with a comment or a
``nomad fmt`` of the jobspec, which Nomad's provider does not even send (it compares the
parsed jobs).
"""

from __future__ import annotations

import re

import pytest

from infra import jobspec
from infra.api_job import JOBSPEC
from tests.pulumi_harness import run_program
from tests.stack_rules import STACK_FILES, engine_config
from tests.support import REPO

# Variables whose change Nomad applies without replacing an allocation: not in a task, the
# group's network or its meta (deployment and reschedule settings, placement, count).
IN_PLACE = {
    "api_count": "7",
    "api_distinct_hosts": "flipped",
    "canary": "3",
    "node_pool": "elsewhere",
    "datacenters": '["dc9"]',
    "min_healthy_time": "11s",
    "healthy_deadline": "9999s",
    "progress_deadline": "19999s",
    "reschedule_attempts": "5",
    "reschedule_interval": "99999s",
    "reschedule_delay": "31s",
}
# Variables of the API task or the group's network: Nomad replaces allocations, the migrator's
# task stays what it was.
API_ONLY = {
    "api_image": "registry.example/api@sha256:" + "9" * 64,
    "api_port": "8181",
    "api_args": '["--port", "$${NOMAD_PORT_api}", "--debug"]',
    "api_env": '{"EXTRA": "1"}',
    "migrations_hash": "another-hash",
}
# Variables of the db-migrator task.
MIGRATOR = {
    "migrator_image": "registry.example/db-migrator@sha256:" + "8" * 64,
    "migrator_args": '["migrate-to", "latest", "--lock-timeout", "60s", "--run-timeout", "60s"]',
    "migrator_statement_timeout": "61s",
    "migrator_db_lock_timeout": "6s",
    "migrator_lock_retries": "4",
    "secrets_path": "nomad/jobs/api/elsewhere",
}


@pytest.fixture(params=STACK_FILES, ids=lambda p: p.name)
def variables(request: pytest.FixtureRequest) -> dict[str, str]:
    name = request.param.name.removeprefix("Pulumi.").removesuffix(".yaml")
    job = run_program(REPO / "__main__.py", engine_config(request.param), stack=name).recorder.one(
        "nomad:index/job:Job"
    )
    return dict(job.inputs["hcl2"]["vars"])


def digests(variables: dict[str, str], text: str | None = None) -> tuple[str, str]:
    text = JOBSPEC.read_text() if text is None else text
    deployment = jobspec.migrator_deployment(text, variables)
    settings = jobspec.settings_digest(text, {**variables, jobspec.DEPLOYMENT_VARIABLE: deployment})
    return deployment, settings


def test_the_program_submits_the_digests_of_what_it_submits(variables: dict[str, str]) -> None:
    deployment, settings = digests(variables)
    assert re.fullmatch(r"[0-9a-f]{64}", deployment)
    assert variables[jobspec.DEPLOYMENT_VARIABLE] == deployment
    assert variables[jobspec.SETTINGS_VARIABLE] == settings


@pytest.mark.parametrize("name", sorted(IN_PLACE))
def test_a_change_nomad_applies_in_place_changes_neither(variables: dict[str, str], name: str) -> None:
    value = IN_PLACE[name] if IN_PLACE[name] != "flipped" else {"true": "false", "false": "true"}[variables[name]]
    assert variables[name] != value
    assert digests({**variables, name: value}) == digests(variables)


@pytest.mark.parametrize("name", sorted(API_ONLY))
def test_a_change_of_the_api_alone_changes_the_settings_only(variables: dict[str, str], name: str) -> None:
    assert variables[name] != API_ONLY[name]
    deployment, settings = digests({**variables, name: API_ONLY[name]})
    assert deployment == digests(variables)[0], "the migrator runs what it ran: no verdict to wait for"
    assert settings != digests(variables)[1]


@pytest.mark.parametrize("name", sorted(MIGRATOR))
def test_a_change_of_the_migrators_task_changes_both(variables: dict[str, str], name: str) -> None:
    assert variables[name] != MIGRATOR[name]
    deployment, settings = digests({**variables, name: MIGRATOR[name]})
    assert deployment != digests(variables)[0]
    assert settings != digests(variables)[1]


def test_an_api_default_of_the_jobspec_changes_the_settings(variables: dict[str, str]) -> None:
    text = JOBSPEC.read_text()
    changed = text.replace("default     = 1024", "default     = 2048", 1)
    assert changed != text
    assert digests(variables, changed)[0] == digests(variables)[0]
    assert digests(variables, changed)[1] != digests(variables)[1]


def test_comments_and_formatting_change_nothing(variables: dict[str, str]) -> None:
    text = JOBSPEC.read_text()
    reformatted = "# a comment\n" + text.replace('      driver = "docker"\n', '      driver   =   "docker"  // why\n')
    reformatted = reformatted.replace(
        '        hook    = "prestart"\n', '        # before start\n        hook = "prestart"\n'
    )
    assert reformatted.count('driver   =   "docker"') == 1, "the migrator's task"
    assert 'hook = "prestart"' in reformatted
    assert digests(variables, reformatted) == digests(variables)


def test_the_deployment_leaves_its_own_variable_out(variables: dict[str, str]) -> None:
    assert digests({**variables, jobspec.DEPLOYMENT_VARIABLE: "anything"})[0] == digests(variables)[0]
    text = JOBSPEC.read_text()
    assert "MIGRATOR_DEPLOYMENT        = var.migrator_deployment" in text, "the task carries it"


def test_only_plain_references_are_evaluated() -> None:
    spec = jobspec.parse(JOBSPEC.read_text())
    assert jobspec.substitute("${var.api_port}", {"api_port": "80"}, spec, frozenset()) == 80
    assert jobspec.substitute("at ${var.api_port}!", {"api_port": "80"}, spec, frozenset()) == "at 80!"
    assert jobspec.substitute("${NOMAD_ALLOC_ID}", {}, spec, frozenset()) == "${NOMAD_ALLOC_ID}"
    assert jobspec.substitute("${var.api_cpu}", {}, spec, frozenset()) == 1000, "the jobspec's default"
    assert jobspec.substitute(["${var.api_port}"], {"api_port": "80"}, spec, frozenset({"api_port"})) == [
        "${var.api_port}"
    ]
    with pytest.raises(jobspec.UnsupportedExpression) as refused:
        jobspec.substitute("${var.canary > 0}", {"canary": "1"}, spec, frozenset())
    assert str(refused.value) == "'${var.canary > 0}': only ${var.NAME} references can be evaluated here"
