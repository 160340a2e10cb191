"""The stack's configuration, read and checked once, with errors that name the key, and
handed to each component as its own Args.

Defaults come from ``Pulumi.yaml``, the file the engine applies them from, so the program
and the engine can never disagree about a value a stack leaves out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.api_job import DATABASE_ENV, DATABASE_ITEM, ApiJobArgs
from infra.registry import ARTIFACT_REGISTRY, DIGEST_REFERENCE, RegistryArgs
from infra.rehearsal_check import RehearsalArgs
from migrator import Safety, parse_duration

PROJECT = "api-migrations"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
_REGISTRY_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?"
)
_REPOSITORY_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A stack reference: [organization/][project/]stack.
_STACK_REFERENCE = re.compile(r"(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+")
MIN_MIGRATION_SECONDS = 60
MAX_MIGRATION_SECONDS = 24 * 3600


class ConfigError(pulumi.RunError):
    """Stops the program with one message and no stack trace."""


@dataclass(frozen=True)
class StackConfig:
    """Every setting, checked, as each component's own Args, and what the program itself reads."""

    registry: RegistryArgs
    job: ApiJobArgs
    report_migrations: bool  # read the database during preview/up and report what it applied
    promote_from: str | None  # the stack whose db-migrator image this one deploys, instead of building one
    rehearsal: RehearsalArgs  # the rehearsal and drift check before anything is declared


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


@cache
def project_schema() -> dict[str, dict[str, Any]]:
    """The ``config`` section of ``Pulumi.yaml``: each key's type, default and flags."""
    loaded = yaml.safe_load(PROJECT_FILE.read_text())
    return dict(loaded.get("config") or {})


def default(name: str) -> Any:
    return project_schema()[name].get("default")


class _Reader:
    """Reads one key at a time: the stack's value, else the project default."""

    def __init__(self) -> None:
        self.config = pulumi.Config(PROJECT)

    def raw(self, name: str) -> str | None:
        return self.config.get(name)

    def string(self, name: str) -> str:
        raw = self.raw(name)
        return str(default(name) if raw is None else raw)

    def integer(self, name: str, minimum: int, maximum: int) -> int:
        raw = self.raw(name)
        if raw is None:
            return int(default(name))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{_key(name)} must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{_key(name)} must be between {minimum} and {maximum}, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.raw(name)
        if raw is None:
            return bool(default(name))
        if raw.lower() not in {"true", "false"}:
            raise ConfigError(f"{_key(name)} must be true or false, got {raw!r}")
        return raw.lower() == "true"

    def structured(self, name: str) -> Any:
        raw = self.raw(name)
        if raw is None:
            return default(name)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            kind = project_schema()[name]["type"]
            raise ConfigError(
                f"{_key(name)} must be a YAML {'list' if kind == 'array' else 'map'} in the stack file,"
                f" not a string; got {raw!r}"
            ) from None

    def names(self, name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{_key(name)} must be a non-empty list of strings, got {value!r}")
        return value

    def environment(self, name: str, value: Any) -> dict[str, str]:
        """A map of environment variable names to scalar values, as strings."""
        if not isinstance(value, dict):
            raise ConfigError(f"{_key(name)} must be a map of NAME: value, got a {type(value).__name__}")
        result: dict[str, str] = {}
        for env_name, env_value in value.items():
            if not _ENV_NAME.fullmatch(env_name):
                raise ConfigError(f"{_key(name)}: {env_name!r} is not an environment variable name")
            if env_name in DATABASE_ENV or env_name == DATABASE_ITEM:
                raise ConfigError(f"{_key(name)}: {env_name} is set from databaseUrl, do not set it here")
            if isinstance(env_value, bool):
                result[env_name] = "true" if env_value else "false"
            elif isinstance(env_value, str | int | float):
                result[env_name] = str(env_value)
            else:
                raise ConfigError(f"{_key(name)}.{env_name} must be a string, number or boolean")
        return result


def _api_secrets(reader: _Reader, api_env: dict[str, str]) -> pulumi.Output[dict[str, str]]:
    # The engine hands over the schema's default ({}) as plain config: only values are secret.
    if reader.structured("apiSecrets") and not pulumi.runtime.is_config_secret(_key("apiSecrets")):
        raise ConfigError(
            f"{_key('apiSecrets')} is stored in plain text: set each value with"
            " `pulumi config set --secret --path 'apiSecrets.NAME' VALUE`"
        )
    secrets = reader.environment("apiSecrets", reader.structured("apiSecrets"))
    if clash := sorted(set(secrets) & set(api_env)):
        raise ConfigError(f"{_key('apiEnv')} and {_key('apiSecrets')} both set {', '.join(clash)}")
    return pulumi.Output.secret(secrets)


def _migration_timeout(reader: _Reader) -> int:
    text = reader.string("migrationTimeout")
    try:
        seconds = int(parse_duration(text))
    except ValueError as exc:
        raise ConfigError(f"{_key('migrationTimeout')}: {exc}") from None
    if not MIN_MIGRATION_SECONDS <= seconds <= MAX_MIGRATION_SECONDS:
        raise ConfigError(f"{_key('migrationTimeout')} must be between 1m and 24h, got {text!r}")
    return seconds


def _migrate_to(reader: _Reader) -> int | None:
    text = reader.string("migrateTo").strip()
    if text == "latest":
        return None
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"{_key('migrateTo')} must be `latest` or a migration version (digits), got {text!r}")
    return int(text)


def _rehearsal(reader: _Reader, report_migrations: bool, job: ApiJobArgs) -> RehearsalArgs:
    scratch = reader.string("scratchServerUrl").strip() or None
    # The engine hands over the schema's default ("") as plain config: only a value set is checked.
    if scratch is not None and not pulumi.runtime.is_config_secret(_key("scratchServerUrl")):
        raise ConfigError(
            f"{_key('scratchServerUrl')} is stored in plain text: set it with"
            " `pulumi config set --secret scratchServerUrl <url>`"
        )
    excluded = reader.structured("driftExcludeSchemas")
    if not isinstance(excluded, list) or not all(isinstance(name, str) and name for name in excluded):
        raise ConfigError(f"{_key('driftExcludeSchemas')} must be a list of schema names, got {excluded!r}")
    return RehearsalArgs(
        # Plain, in this process only: the check runs before any Output could carry it (infra/rehearsal_check.py).
        database_url=reader.raw("databaseUrl") if report_migrations else None,
        scratch_url=scratch,
        fail_on_drift=reader.boolean("failOnDrift"),
        exclude_schemas=excluded,
        migrate_to=job.migrate_to,
        safety=Safety(statement_timeout=float(job.deadlines.statement_timeout)),
    )


def _check_api_image(image: str, allow_mutable: bool) -> None:
    """Nomad deploys only when the job changes: a new image pushed under the same tag never ships."""
    if DIGEST_REFERENCE.fullmatch(image):
        return
    if not allow_mutable:
        raise ConfigError(
            f"{_key('apiImage')} {image!r} is not pinned by digest: Nomad deploys only when the job changes,"
            " so an image pushed again under the same tag is never deployed. Set it to the image's digest"
            f" reference (name@sha256:...), or set {_key('allowMutableApiImage')} to true to deploy a tag anyway"
        )
    pulumi.log.warn(
        f"{_key('apiImage')} {image!r} is not pinned by digest: an image pushed again under the same tag"
        f" is never deployed ({_key('allowMutableApiImage')} is true)"
    )


def _promote_from(reader: _Reader) -> str | None:
    name = reader.string("promoteFrom").strip()
    if not name:
        return None
    if not _STACK_REFERENCE.fullmatch(name):
        raise ConfigError(
            f"{_key('promoteFrom')} must name a stack, like staging or my-org/{PROJECT}/staging, got {name!r}"
        )
    parts = name.split("/")
    if parts[-1] == pulumi.get_stack() and (len(parts) == 1 or parts[-2] == PROJECT):
        raise ConfigError(f"{_key('promoteFrom')} {name!r} is this stack: name the stack whose image it deploys")
    return name


def load() -> StackConfig:
    reader = _Reader()
    registry = reader.string("registry")
    if registry != ARTIFACT_REGISTRY and not _REGISTRY_HOST.fullmatch(registry):
        raise ConfigError(
            f"{_key('registry')} must be {ARTIFACT_REGISTRY!r} or a registry host such as localhost:5000,"
            f" got {registry!r}"
        )
    repository = reader.string("repository")
    existing = reader.string("existingRepository") or None
    for name, value in (("repository", repository), ("existingRepository", existing)):
        if value is not None and not _REPOSITORY_ID.fullmatch(value):
            raise ConfigError(f"{_key(name)} must be an Artifact Registry repository id, got {value!r}")
    api_image = reader.raw("apiImage")
    if not api_image:
        raise ConfigError(f"{_key('apiImage')} is required: the API's container image")
    _check_api_image(api_image, reader.boolean("allowMutableApiImage"))
    if reader.raw("databaseUrl") is None:
        raise ConfigError(
            f"{_key('databaseUrl')} is required: set it with `pulumi config set --secret databaseUrl <url>`"
        )
    api_count = reader.integer("apiCount", minimum=1, maximum=100)
    api_env = reader.environment("apiEnv", reader.structured("apiEnv"))
    gcp = pulumi.Config("gcp")
    registry_args = RegistryArgs(
        registry=registry,
        repository=repository,
        existing_repository=existing,
        registry_reader=reader.string("registryReaderServiceAccount") or None,
        gcp_project=gcp.get("project"),
        gcp_region=gcp.get("region"),
    )
    if registry_args.uses_artifact_registry and not (registry_args.gcp_project and registry_args.gcp_region):
        raise ConfigError("gcp:project and gcp:region are required when api-migrations:registry is artifact-registry")
    job = ApiJobArgs(
        api_image=api_image,
        api_count=api_count,
        api_port=reader.integer("apiPort", minimum=1, maximum=65535),
        api_args=reader.names("apiArgs", reader.structured("apiArgs")),
        api_env=api_env,
        api_secrets=_api_secrets(reader, api_env),
        api_distinct_hosts=reader.boolean("apiDistinctHosts"),
        canary=reader.integer("canary", minimum=0, maximum=api_count),
        node_pool=reader.string("nodePool"),
        datacenters=reader.names("datacenters", reader.structured("datacenters")),
        migration_timeout_seconds=_migration_timeout(reader),
        migrate_to=_migrate_to(reader),
        allow_down=reader.boolean("allowDown"),
        database_url=reader.config.require_secret("databaseUrl"),
    )
    if reader.raw("databaseUrlVersion") is not None:
        # Set by stacks made before the version followed the content; the engine ignores undeclared keys.
        pulumi.log.warn(
            f"{_key('databaseUrlVersion')} is no longer read: the Nomad Variable is written again whenever its"
            " content changes. Remove it with `pulumi config rm databaseUrlVersion`"
        )
    report_migrations = reader.boolean("reportMigrations")
    return StackConfig(
        registry=registry_args,
        job=job,
        report_migrations=report_migrations,
        promote_from=_promote_from(reader),
        rehearsal=_rehearsal(reader, report_migrations, job),
    )
