"""The version of the Nomad Variable's write-only content, derived from that content.

The Nomad provider writes ``items_wo`` only when ``items_wo_version`` changes
(terraform-provider-nomad ``resourceVariableWrite``: on create, or ``HasChange``), and keeps
no copy it could compare. A version an operator bumps by hand is one a rotation can forget:
Nomad keeps the old database URL while Pulumi reads with the new one. So the version is a
function of the content: an HMAC-SHA-256 of it under a random key that the stack makes once
and keeps only as a secret. The version is plain in the state and in the job's meta, yet
says nothing about the secret without the key: a plain digest could be matched against
guessed passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

KEY_BYTES = 32
_KEY_ID = "variable-version-key"
# Versions are whole numbers the engine carries as float64 (exact below 2**53) and the provider
# requires to be at least 1: 48 bits of the HMAC, plus one.
_VERSION_BYTES = 6


def keyed_version(key: str, content: str) -> int:
    """``items_wo_version`` for ``content`` under ``key`` (hexadecimal)."""
    mac = hmac.new(bytes.fromhex(key), content.encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:_VERSION_BYTES], "big") + 1


class _KeyProvider(ResourceProvider):
    """Random bytes, made on create and never changed: a new key would write the Variable again
    for nothing (the same content) and roll every allocation."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(_KEY_ID, {"key": secrets.token_hex(int(props["bytes"]))})

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False)


class VersionKey(pulumi.dynamic.Resource):
    """The stack's key for ``keyed_version``; its output is a secret, so the engine stores it
    encrypted."""

    key: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        secret = pulumi.ResourceOptions(additional_secret_outputs=["key"])
        props = {"bytes": KEY_BYTES, "key": None}
        super().__init__(_KeyProvider(), name, props, pulumi.ResourceOptions.merge(secret, opts))
