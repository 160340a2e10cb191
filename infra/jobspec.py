"""The jobspec as Nomad reads it: parsed with python-hcl2, its variables substituted.

Two digests come from it, over the parsed blocks and not the text, so a comment or a
``nomad fmt`` changes neither:

- the migrator's deployment (``migrator_deployment``): the db-migrator task as Nomad would
  run it, its image, arguments, environment and the rest of its block. Every run records it
  (``MIGRATOR_DEPLOYMENT``), so ``pulumi up`` waits for a verdict exactly when what the
  migrator runs changes, and decides on the runs of this deployment, not on the clock. The
  task's own ``MIGRATOR_DEPLOYMENT`` is left out of it: a digest cannot contain itself.
- the settings digest (``settings_digest``): every part of the group for which Nomad replaces
  allocations when it changes (scheduler ``tasksUpdated``: each task's block, the group's
  network, and the group's meta, which every task sees). It is in the group's meta itself, so
  the job Nomad runs, read back by a refresh, says which settings it runs: a deployment Nomad
  reverted is seen even when only the API's settings changed. It changes only with parts that
  replace allocations anyway, so it never replaces one itself.

Both digest python-hcl2's reading of the blocks: a release that reads them otherwise (8.1.0 to
8.1.2 did, tests/infra/test_api_job.py pins it) changes them once, which replaces every allocation
and waits for the migrator's run of the new deployment once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import hcl2

JOB_ID = "api"
GROUP = "api-service"
MIGRATOR_TASK = "db-migrator"
DEPLOYMENT_VARIABLE = "migrator_deployment"
SETTINGS_VARIABLE = "settings_digest"
_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False, preserve_heredocs=False
)
_WHOLE = re.compile(r"\$\{var\.(\w+)\}")
_ANY_VARIABLE = re.compile(r"\bvar\.(\w+)")


class UnsupportedExpression(ValueError):
    """An expression the digests cannot evaluate as Nomad would."""


@cache
def parse(text: str) -> dict[str, Any]:
    return dict(hcl2.loads(text, serialization_options=_OPTIONS))


def declared(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each ``variable`` block by name."""
    return {name: body for block in spec.get("variable", []) for name, body in block.items()}


def group(spec: Mapping[str, Any]) -> dict[str, Any]:
    return dict(spec["job"][0][JOB_ID]["group"][0][GROUP])


def tasks(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: body for task in group(spec)["task"] for name, body in task.items()}


def _value(name: str, variables: Mapping[str, str], spec: Mapping[str, Any]) -> Any:
    """A variable's value as Nomad evaluates it: a string as given; any other type is an HCL
    expression, whose escaped ``$${`` and ``%%{`` stand for the text ``${`` and ``%{``."""
    variable = declared(spec)[name]
    if name not in variables:
        return variable["default"]
    given = variables[name]
    if variable.get("type") == "string":
        return given
    return json.loads(given.replace("$${", "${").replace("%%{", "%{"))


def substitute(value: Any, variables: Mapping[str, str], spec: Mapping[str, Any], keep: frozenset[str]) -> Any:
    """``value`` with every ``var.NAME`` but those in ``keep`` replaced by its value."""
    if isinstance(value, dict):
        return {key: substitute(item, variables, spec, keep) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, spec, keep) for item in value]
    if not isinstance(value, str):
        return value
    whole = _WHOLE.fullmatch(value)
    if whole and whole[1] not in keep:
        return _value(whole[1], variables, spec)

    def embedded(match: re.Match[str]) -> str:
        return match[0] if match[1] in keep else str(_value(match[1], variables, spec))

    replaced = _WHOLE.sub(embedded, value)
    left = {name for name in _ANY_VARIABLE.findall(_WHOLE.sub("", replaced))}
    if left:
        raise UnsupportedExpression(f"{value!r}: only ${{var.NAME}} references can be evaluated here")
    return replaced


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def migrator_deployment(text: str, variables: Mapping[str, str]) -> str:
    """Digest of the db-migrator task as Nomad would run it."""
    spec = parse(text)
    task = tasks(spec)[MIGRATOR_TASK]
    return _digest(substitute(task, variables, spec, frozenset({DEPLOYMENT_VARIABLE})))


def settings_digest(text: str, variables: Mapping[str, str]) -> str:
    """Digest of every part of the group Nomad replaces allocations for, its own meta entry left out."""
    spec = parse(text)
    found = group(spec)
    replacing = {
        "tasks": tasks(spec),
        "network": found.get("network"),
        "meta": [{k: v for k, v in meta.items() if k != SETTINGS_VARIABLE} for meta in found.get("meta", [])],
    }
    return _digest(substitute(replacing, variables, spec, frozenset()))
