"""The id of a rollback the stack asks for: new whenever ``migrateTo`` changes while
``allowDown`` is set, the same on every other ``pulumi up``.

The db-migrator task runs ``migrate-to V --allow-down --rollback-id ID``, and the migrator
records the id with its run: once a run of ID completed, a later run of the same job version
(Nomad reverting to it, rescheduling it, a drain, ``nomad job revert``) never rolls the
database back again after it moved on. The resource exists only while the stack allows going
down, so setting ``allowDown`` again, or ``pulumi up --replace`` of this resource, asks for a
new rollback.
"""

from __future__ import annotations

import uuid
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider

_INPUTS = ("migrate_to",)


class RollbackRequestProvider(ResourceProvider):
    """Inputs: ``migrate_to`` (a version, or ``latest``). The resource's id is the rollback's."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(uuid.uuid4().hex, dict(props))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in _INPUTS if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)


class RollbackRequest(pulumi.dynamic.Resource):
    """A rollback to ``migrate_to`` (None: the newest migration) the stack asks for once."""

    def __init__(self, name: str, migrate_to: int | None, opts: pulumi.ResourceOptions | None = None):
        target = "latest" if migrate_to is None else str(migrate_to)
        super().__init__(RollbackRequestProvider(), name, {"migrate_to": target}, opts)
