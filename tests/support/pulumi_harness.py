"""Runs ``__main__.py``, or any code that declares resources, under Pulumi's own unit-test
mocks and records what it declares."""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from tests.support import REPO

ACCESS_TOKEN = "ya29.mock-access-token"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
APPLIED = [20251027000000]


@dataclass
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    options: pulumi.ResourceOptions = field(default_factory=pulumi.ResourceOptions)


@dataclass
class Recorder(Mocks):
    """Answers as the providers would, and records every resource with its options.

    ``nomad_runs`` and ``nomad_runs_settings`` stand for the migrator image and the settings
    digest Nomad actually runs after the update (None: those submitted), as the refreshed
    job's group meta reports them."""

    resources: list[Declared] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    call_providers: dict[str, str] = field(default_factory=dict)  # invoke token -> the provider reference it went to
    options: dict[tuple[str, str], pulumi.ResourceOptions] = field(default_factory=dict)
    nomad_runs: str | None = None
    nomad_runs_settings: str | None = None
    access_token: str = ACCESS_TOKEN
    stack_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # other stacks' outputs, by name
    version_key: str = "00" * 32  # what infra.variable_version.VersionKey creates

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "docker:index/image:Image":
            name = str(args.inputs["imageName"])
            outputs["repoDigest"] = f"{name.rsplit(':', 1)[0]}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"
        if args.typ == "nomad:index/job:Job":
            submitted = args.inputs["hcl2"]["vars"]
            meta = {
                "migrator_image": self.nomad_runs or submitted["migrator_image"],
                "migrations_hash": submitted["migrations_hash"],
                "migrator_deployment": submitted["migrator_deployment"],
                "settings_digest": self.nomad_runs_settings or submitted["settings_digest"],
            }
            outputs["taskGroups"] = [{"name": "api-service", "count": 1, "meta": meta, "tasks": [], "volumes": []}]
        if args.typ == "pulumi:pulumi:StackReference":
            # The engine reads the stack named by the id (pulumi/stack_reference.py).
            outputs.update(outputs=self.stack_outputs.get(str(args.resource_id), {}), secretOutputNames=[])
        if args.typ == "pulumi-python:dynamic:Resource" and "bytes" in args.inputs:
            # Not secret here: mocks do not apply additional_secret_outputs, the engine does.
            outputs.update(key=self.version_key)
        elif args.typ == "pulumi-python:dynamic:Resource":
            outputs.update(applied=APPLIED, latest=APPLIED[-1], pending=[], error=None)
        options = self.options.get((args.typ, args.name), pulumi.ResourceOptions())
        self.resources.append(Declared(args.typ, args.name, dict(args.inputs), outputs, options))
        return f"{args.name}-id", outputs

    def remember_options(self, args: pulumi.ResourceTransformationArgs) -> None:
        self.options[(args.type_, args.name)] = args.opts

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        self.calls.append(args.token)
        self.call_providers[args.token] = args.provider
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {"accessToken": self.access_token, "project": "p", "region": "r", "zone": "z", "id": "x"}, []
        if args.token == "gcp:artifactregistry/getRepository:getRepository":
            found = {k: args.args[k] for k in ("location", "project", "repositoryId")}
            return {**found, "name": found["repositoryId"], "format": "DOCKER"}, []
        return {}, []

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Declared:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, got {[r.name for r in found]}"
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


def run_declarations(
    declare: Callable[[], object],
    config: dict[str, str],
    *,
    stack: str = "staging",
    secret_keys: tuple[str, ...] = ("api-migrations:databaseUrl",),
    recorder: Recorder | None = None,
    preview: bool = False,
) -> Run:
    recorder = recorder or Recorder()
    exports: dict[str, Any] = {}
    pulumi.runtime.set_mocks(recorder, project="api-migrations", stack=stack, preview=preview)
    pulumi.runtime.set_all_config(config, list(secret_keys))

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        recorder.remember_options(args)

    @pulumi.runtime.test
    def execute() -> pulumi.Output[None]:
        pulumi.runtime.register_stack_transformation(record)
        with mock.patch.object(pulumi, "export", side_effect=exports.__setitem__):
            declare()
        outputs = {k: pulumi.Output.from_input(v) for k, v in exports.items()}
        return pulumi.Output.all(**outputs).apply(exports.update)

    execute()
    return Run(recorder, exports)


def run_program(program: Path, config: dict[str, str], **options: Any) -> Run:
    return run_declarations(lambda: runpy.run_path(str(program), run_name="__main__"), config, **options)


PASSWORD = "pW-9f2c81e0-secret"
# A host name that must never show, and hostaddr so that a program run that reads the database
# only ever reaches a closed port on loopback: tests send nothing anywhere else.
DATABASE_URL = f"postgresql://api:{PASSWORD}@db.internal.example:1/api?hostaddr=127.0.0.1&sslmode=require"
API_DIGEST = "us-central1-docker.pkg.dev/e2b-staging/api/api@sha256:" + "ab" * 32
STAGING = {
    "gcp:project": "e2b-staging",
    "gcp:region": "us-central1",
    "api-migrations:registry": "artifact-registry",
    "api-migrations:registryReaderServiceAccount": "nomad@e2b-staging.iam.gserviceaccount.com",
    "api-migrations:apiImage": API_DIGEST,
    "api-migrations:apiCount": "2",
    "api-migrations:datacenters": '["us-central1-a"]',
    "api-migrations:databaseUrl": DATABASE_URL,
    # The status resource is mocked; reading the database is tested against a real one.
    "api-migrations:reportMigrations": "false",
}


def staging(overrides: Mapping[str, str | None] | None = None, program: Path = REPO / "__main__.py", **kw: Any) -> Run:
    """``program`` run as the staging stack with STAGING's config, ``overrides`` on top (None unsets a key)."""
    config = {k: v for k, v in {**STAGING, **(overrides or {})}.items() if v is not None}
    return run_program(program, config, **kw)
