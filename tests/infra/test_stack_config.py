"""Every stack file against Pulumi.yaml's schema, with the Pulumi engine's own rules
(tests/support/stack_rules.py), and the program run on each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import config as stack_config
from tests.support import REPO
from tests.support.pulumi_harness import run_program
from tests.support.stack_rules import (
    PROJECT,
    STACK_FILES,
    Secure,
    engine_config,
    engine_errors,
    load_stack,
    operator_secrets,
    project_config,
    type_name,
    valid,
)


def test_the_project_schema_is_one_the_engine_accepts() -> None:
    project = project_config()
    for key, spec in project.items():
        assert spec.get("type") in {"string", "integer", "boolean", "array", "object"}, key
        assert spec.get("description"), f"{key} has no description"
        if spec["type"] == "array":
            assert "items" in spec, f"{key}: an array needs items"
        if "default" in spec:
            assert not spec.get("secret"), f"{key}: a secret with a default fails every stack that omits it"
            default = spec["default"]
            content = json.loads(json.dumps(default)) if isinstance(default, list | dict) else default
            assert valid(spec["type"], spec.get("items"), content), f"{key}: default is not a {type_name(spec)}"


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_file_passes_the_engines_validation(path: Path) -> None:
    project = project_config()
    stack = load_stack(path)
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    # The operator sets required secrets with `pulumi config set --secret`: stand in for that.
    for key in operator_secrets(project):
        stack.setdefault(f"{PROJECT}:{key}", Secure("v1:operator-set"))
    assert engine_errors(name, stack, project) == []
    undeclared = [k for k in stack if k.startswith(f"{PROJECT}:") and k.split(":", 1)[1] not in project]
    assert undeclared == [], "the program reads only declared keys: a typo here is silently ignored"


def test_the_rules_catch_what_the_engine_refuses() -> None:
    project = project_config()
    stack = {f"{PROJECT}:apiImage": "x/api:1", f"{PROJECT}:databaseUrl": Secure("v1:x")}
    assert engine_errors("t", stack, project) == []
    assert engine_errors("t", {**stack, f"{PROJECT}:datacenters": '["dc1"]'}, project) == [
        "Stack 't' with configuration key 'datacenters' must be of type 'array<string>'"
    ]
    assert engine_errors("t", {**stack, f"{PROJECT}:databaseUrl": "postgresql://plain"}, project) == [
        "Stack 't' with configuration key 'databaseUrl' must be encrypted as it's secret"
    ]
    assert engine_errors("t", {**stack, f"{PROJECT}:apiCount": "three"}, project) == [
        "Stack 't' with configuration key 'apiCount' must be of type 'integer'"
    ]
    assert engine_errors("t", {f"{PROJECT}:databaseUrl": Secure("v1:x")}, project) == [
        "Stack 't' is missing configuration value(s) ['apiImage']"
    ]
    assert engine_errors("t", {**stack, f"{PROJECT}:apiEnv": ["A=b"]}, project) == [
        "Stack 't' with configuration key 'apiEnv' must be of type 'object'"
    ]


def test_the_readme_says_how_to_set_each_required_secret() -> None:
    readme = (REPO / "README.md").read_text()
    for key in operator_secrets(project_config()):
        assert f"pulumi config set --secret {key}" in readme


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_stack_file_runs_the_program(path: Path) -> None:
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    run = run_program(REPO / "__main__.py", engine_config(path), stack=name)
    assert run.recorder.one("nomad:index/job:Job")


def test_program_defaults_are_the_project_files() -> None:
    """A key a stack leaves out gets the same value from the engine and from the program."""
    for key, spec in project_config().items():
        if "default" in spec:
            assert stack_config.default(key) == spec["default"]


def test_a_quoted_list_stops_the_program_naming_the_key() -> None:
    config = engine_config(REPO / "Pulumi.dev.yaml")
    config[f"{PROJECT}:datacenters"] = "dc1, dc2"
    with pytest.raises(stack_config.ConfigError, match="api-migrations:datacenters must be a YAML list"):
        run_program(REPO / "__main__.py", config, stack="dev")
