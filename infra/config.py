"""The stack's configuration, read and checked once, with errors that name the key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi

PROJECT = "api-migrations"
ARTIFACT_REGISTRY = "artifact-registry"
_REGISTRY_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?"
)
_REPOSITORY_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


class ConfigError(pulumi.RunError):
    """Stops the program with one message and no stack trace."""


@dataclass(frozen=True)
class StackConfig:
    registry: str  # "artifact-registry" or a registry host such as localhost:5000
    repository: str
    api_image: str
    api_count: int
    api_port: int
    node_pool: str
    datacenters: list[str]
    database_url: pulumi.Output[str]  # always secret
    database_url_version: int
    report_migrations: bool
    registry_reader: str | None  # service account e-mail of the Nomad clients
    gcp_project: str | None
    gcp_region: str | None

    @property
    def uses_artifact_registry(self) -> bool:
        return self.registry == ARTIFACT_REGISTRY


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def _int(config: pulumi.Config, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = config.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{_key(name)} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{_key(name)} must be between {minimum} and {maximum}, got {value}")
    return value


def _bool(config: pulumi.Config, name: str, default: bool) -> bool:
    raw = config.get(name)
    if raw is None:
        return default
    if raw.lower() not in {"true", "false"}:
        raise ConfigError(f"{_key(name)} must be true or false, got {raw!r}")
    return raw.lower() == "true"


def _datacenters(config: pulumi.Config) -> list[str]:
    raw = config.get("datacenters")
    if raw is None:
        return ["*"]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = [part.strip() for part in raw.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{_key('datacenters')} must be a non-empty list of names, got {raw!r}")
    return value


def load() -> StackConfig:
    config = pulumi.Config(PROJECT)
    registry = config.get("registry") or ARTIFACT_REGISTRY
    if registry != ARTIFACT_REGISTRY and not _REGISTRY_HOST.fullmatch(registry):
        raise ConfigError(
            f"{_key('registry')} must be {ARTIFACT_REGISTRY!r} or a registry host such as localhost:5000,"
            f" got {registry!r}"
        )
    repository = config.get("repository") or "e2b-orchestration"
    if not _REPOSITORY_ID.fullmatch(repository):
        raise ConfigError(f"{_key('repository')} must be an Artifact Registry repository id, got {repository!r}")
    api_image = config.get("apiImage")
    if not api_image:
        raise ConfigError(f"{_key('apiImage')} is required: the API's container image")
    if config.get("databaseUrl") is None:
        raise ConfigError(
            f"{_key('databaseUrl')} is required: set it with `pulumi config set --secret databaseUrl <url>`"
        )
    gcp = pulumi.Config("gcp")
    stack = StackConfig(
        registry=registry,
        repository=repository,
        api_image=api_image,
        api_count=_int(config, "apiCount", default=1, minimum=1, maximum=100),
        api_port=_int(config, "apiPort", default=80, minimum=1, maximum=65535),
        node_pool=config.get("nodePool") or "api",
        datacenters=_datacenters(config),
        database_url=config.require_secret("databaseUrl"),
        database_url_version=_int(config, "databaseUrlVersion", default=1, minimum=1, maximum=2**31 - 1),
        report_migrations=_bool(config, "reportMigrations", default=True),
        registry_reader=config.get("registryReaderServiceAccount"),
        gcp_project=gcp.get("project"),
        gcp_region=gcp.get("region"),
    )
    if stack.uses_artifact_registry and not (stack.gcp_project and stack.gcp_region):
        raise ConfigError("gcp:project and gcp:region are required when api-migrations:registry is artifact-registry")
    return stack
