"""Runs ``__main__.py`` under Pulumi's own unit-test mocks and records what it declares."""

from __future__ import annotations

import hashlib
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

ACCESS_TOKEN = "ya29.mock-access-token"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
APPLIED = [20251027000000]


@dataclass
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Recorder(Mocks):
    resources: list[Declared] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = str(args.inputs["imageName"])
            outputs["repoDigest"] = f"{name.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"
        if args.typ == "pulumi-python:dynamic:Resource":
            outputs.update(applied=APPLIED, latest=APPLIED[-1], error=None)
        self.resources.append(Declared(args.typ, args.name, dict(args.inputs), outputs))
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.calls.append(args.token)
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": ACCESS_TOKEN, "project": "p", "region": "r", "zone": "z", "id": "x"}, []
        return {}, []

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Declared:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]


@dataclass
class Run:
    recorder: Recorder
    exports: dict[str, Any]

    def plain_text(self) -> str:
        """Every declared input and output as JSON, with secret-wrapped values removed."""
        return json.dumps([_without_secrets([r.inputs, r.outputs]) for r in self.recorder.resources], default=str)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return "[secret]"
        return {k: _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def run_program(program: Path, config: dict[str, str], *, stack: str = "staging") -> Run:
    recorder = Recorder()
    exports: dict[str, Any] = {}
    pulumi.runtime.set_mocks(recorder, project="api-migrations", stack=stack, preview=False)
    pulumi.runtime.set_all_config(config, ["api-migrations:databaseUrl"])

    @pulumi.runtime.test
    def execute() -> pulumi.Output[None]:
        with mock.patch.object(pulumi, "export", side_effect=exports.__setitem__):
            runpy.run_path(str(program), run_name="__main__")
        outputs = {k: pulumi.Output.from_input(v) for k, v in exports.items()}
        return pulumi.Output.all(**outputs).apply(exports.update)

    execute()
    return Run(recorder, exports)
