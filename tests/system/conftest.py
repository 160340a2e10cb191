"""The Docker engine the image and dev-stack tests need: a local base image and a registry
(.ci/run starts them); without them the tests skip, and in CI they fail."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support import unavailable
from tools.image_builds import Engine, docker


@pytest.fixture(scope="session")
def engine() -> Engine:
    base, registry = os.environ.get("MIGRATOR_TEST_BASE_IMAGE"), os.environ.get("TEST_REGISTRY")
    if shutil.which("docker") is None:
        unavailable("the docker client is not installed")
    if not base or not registry:
        unavailable("MIGRATOR_TEST_BASE_IMAGE and TEST_REGISTRY are not set (bash .ci/run sets them)")
    assert base
    assert registry
    if docker("info", check=False, timeout=30).returncode != 0:
        unavailable("no Docker engine answers at DOCKER_HOST")
    return Engine(base, registry)
