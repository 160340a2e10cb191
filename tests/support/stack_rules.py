"""The Pulumi engine's own rules for stack files against Pulumi.yaml's schema.

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

import yaml

from tests.support import REPO

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


def engine_config(path: Path) -> dict[str, str]:
    """The config the engine hands the program for a stack file: JSON text for lists and maps."""
    values: dict[str, str] = {}
    for key, value in load_stack(path).items():
        content = engine_content(value)
        values[key] = content if isinstance(content, str) else json.dumps(content)
    values[f"{PROJECT}:databaseUrl"] = "postgresql://api:pw@127.0.0.1:5432/api"
    values[f"{PROJECT}:reportMigrations"] = "false"
    return values
