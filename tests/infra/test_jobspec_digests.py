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
from tests.support import REPO
from tests.support.pulumi_harness import run_program
from tests.support.stack_rules import STACK_FILES, engine_config

NEITHER, SETTINGS, BOTH = "neither", "settings", "both"
# Each variable the program passes, a value other than any stack's, and which digests it changes:
# Nomad applies deployment and reschedule settings, placement and count without replacing an
# allocation; it replaces them for the API task, the group's network and its meta; and the
# db-migrator task is what the migrator's deployment is.
CHANGES = [
    ("api_count", "7", NEITHER),
    ("api_distinct_hosts", "flipped", NEITHER),
    ("canary", "3", NEITHER),
    ("node_pool", "elsewhere", NEITHER),
    ("datacenters", '["dc9"]', NEITHER),
    ("min_healthy_time", "11s", NEITHER),
    ("healthy_deadline", "9999s", NEITHER),
    ("progress_deadline", "19999s", NEITHER),
    ("reschedule_attempts", "5", NEITHER),
    ("reschedule_interval", "99999s", NEITHER),
    ("reschedule_delay", "31s", NEITHER),
    ("api_image", "registry.example/api@sha256:" + "9" * 64, SETTINGS),
    ("api_port", "8181", SETTINGS),
    ("api_args", '["--port", "$${NOMAD_PORT_api}", "--debug"]', SETTINGS),
    ("api_env", '{"EXTRA": "1"}', SETTINGS),
    ("migrations_hash", "another-hash", SETTINGS),
    ("migrator_image", "registry.example/db-migrator@sha256:" + "8" * 64, BOTH),
    ("migrator_args", '["migrate-to", "latest", "--lock-timeout", "60s", "--run-timeout", "60s"]', BOTH),
    ("migrator_statement_timeout", "61s", BOTH),
    ("migrator_db_lock_timeout", "6s", BOTH),
    ("migrator_lock_retries", "4", BOTH),
    ("secrets_path", "nomad/jobs/api/elsewhere", BOTH),
    ("secrets_version", "12345", BOTH),
    ("migrator_memory", "512", BOTH),
]


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


def test_every_variable_the_program_passes_is_classified(variables: dict[str, str]) -> None:
    digests_themselves = {jobspec.DEPLOYMENT_VARIABLE, jobspec.SETTINGS_VARIABLE}
    assert {name for name, _, _ in CHANGES} == set(variables) - digests_themselves


@pytest.mark.parametrize(("name", "value", "effect"), CHANGES, ids=[name for name, _, _ in CHANGES])
def test_a_change_moves_exactly_the_digests_of_what_nomad_does_with_it(
    variables: dict[str, str], name: str, value: str, effect: str
) -> None:
    if value == "flipped":
        value = {"true": "false", "false": "true"}[variables[name]]
    assert variables[name] != value
    deployment, settings = digests({**variables, name: value})
    before = digests(variables)
    assert (deployment != before[0], settings != before[1]) == {
        NEITHER: (False, False),
        SETTINGS: (False, True),  # the migrator runs what it ran: no verdict to wait for
        BOTH: (True, True),
    }[effect]


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
