"""Every stack file against Pulumi.yaml's schema, with the Pulumi engine's own rules.

The engine (pulumi/pulumi pkg/workspace/config.go ``mergeConfig`` and
``validateStackConfigValue``; sdk/go/common/workspace/project.go ``ValidateConfigValue``)
refuses a stack before the program runs when:

- a key of the project's namespace with neither ``default`` nor ``value`` is missing from the
  stack ("Stack 'dev' is missing configuration value ...");
- a key declared ``secret: true`` is not encrypted (a project default counts as a stack value
  here, so a secret key with a default fails on every stack that leaves it out);
- a value is not of its declared type: a YAML scalar reaches the check as its text (``3``,
  ``"3"`` and ``true`` are text), a YAML list or map as decoded JSON; ``integer`` takes a whole
  number or text that parses as one, ``boolean`` the text ``true``/``false`` or a bool,
  ``array`` a list whose every item passes ``items``, ``object`` a map. A quoted
  ``'["dc1"]'`` is text, not an array.

The checks below implement exactly these rules; mocks never apply them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import config as stack_config
from tests.conftest import REPO
from tests.pulumi_harness import run_program

PROJECT = "api-migrations"
STACK_FILES = sorted(REPO.glob("Pulumi.*.yaml"))


class Secure:
    """A ``secure:`` value, as the engine reads it: ciphertext, flagged secure."""

    def __init__(self, ciphertext: str):
        self.ciphertext = ciphertext


def _secure_constructor(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    mapping = loader.construct_mapping(node, deep=True)
    if set(mapping) == {"secure"}:
        return Secure(str(mapping["secure"]))
    return mapping


class StackLoader(yaml.SafeLoader):
    pass


StackLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _secure_constructor)


def is_secure(value: Any) -> bool:
    """config.Value.Secure(): a ciphertext, or a list or map holding one."""
    if isinstance(value, Secure):
        return True
    if isinstance(value, list):
        return any(is_secure(v) for v in value)
    if isinstance(value, dict):
        return any(is_secure(v) for v in value.values())
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, Secure):
        return "[ciphertext]"
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def engine_content(value: Any) -> Any:
    """What ``validateStackConfigValue`` checks: text for a scalar, decoded JSON for a list or map
    (object.MarshalString: bools and numbers become their JSON text)."""
    if isinstance(value, list | dict):
        return json.loads(json.dumps(_plain(value)))
    if isinstance(value, Secure):
        return value.ciphertext
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return str(value)


def type_name(spec: dict[str, Any]) -> str:
    """InferFullTypeName."""
    if "items" in spec:
        return f"array<{type_name(spec['items'])}>"
    return str(spec["type"])


def valid(type_: str, items: dict[str, Any] | None, value: Any) -> bool:
    """ValidateConfigValue, rule for rule."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value == math.trunc(value)
        if isinstance(value, str):
            try:
                int(value, 10)
            except ValueError:
                return False
            return value.strip() == value and "_" not in value
        return False
    if type_ == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_ == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(valid(items["type"], items.get("items"), item) for item in value)


def project_config() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"])


def engine_errors(stack_name: str, stack: dict[str, Any], project: dict[str, dict[str, Any]]) -> list[str]:
    """The engine's verdict on one stack's config, in its own words."""
    errors: list[str] = []
    merged = dict(stack)
    missing = []
    for key in sorted(project):
        spec = project[key]
        full = key if ":" in key else f"{PROJECT}:{key}"
        if full in merged:
            continue
        if "default" in spec or "value" in spec:
            merged[full] = spec.get("value", spec.get("default"))
        elif full.startswith(f"{PROJECT}:"):
            missing.append(key)
    if missing:
        errors.append(f"Stack '{stack_name}' is missing configuration value(s) {missing}")
    for key in sorted(project):
        spec = project[key]
        full = key if ":" in key else f"{PROJECT}:{key}"
        if full not in merged or "type" not in spec:
            continue
        value = merged[full]
        if spec.get("secret") and not is_secure(value):
            errors.append(f"Stack '{stack_name}' with configuration key '{key}' must be encrypted as it's secret")
            continue
        if not valid(spec["type"], spec.get("items"), engine_content(value)):
            errors.append(f"Stack '{stack_name}' with configuration key '{key}' must be of type '{type_name(spec)}'")
    return errors


def load_stack(path: Path) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=StackLoader).get("config") or {})


def operator_secrets(project: dict[str, dict[str, Any]]) -> set[str]:
    """Required secrets: each operator sets them encrypted; a committed file cannot hold them."""
    return {k for k, spec in project.items() if spec.get("secret") and "default" not in spec}


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


def engine_config(path: Path) -> dict[str, str]:
    """The config the engine hands the program for a stack file: JSON text for lists and maps."""
    values: dict[str, str] = {}
    for key, value in load_stack(path).items():
        content = engine_content(value)
        values[key] = content if isinstance(content, str) else json.dumps(content)
    values[f"{PROJECT}:databaseUrl"] = "postgresql://api:pw@127.0.0.1:5432/api"
    values[f"{PROJECT}:reportMigrations"] = "false"
    return values


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
