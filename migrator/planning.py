"""Which files a command runs, parsed, in goose's order, and the refusals that come first.

Every file a command will run is parsed here, before anything is changed, so bad input
never leaves a database half migrated. ``up`` takes pending files in version order and
refuses one older than the highest applied version (goose's out-of-order rule); ``down``
and ``down-to`` walk back from the most recently applied version by the table's ids;
``reset`` takes the highest version first. An applied file that was edited or removed,
and a NO TRANSACTION run that stopped part-way, stop a plan unless the caller allows it;
a plan that would run a Go migration is always refused, naming the lowest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import takewhile

from migrator.errors import InputError
from migrator.events import place
from migrator.options import Options
from migrator.parser import Direction, ParsedMigration, parse_file
from migrator.refusals import DriftRefused, InterruptedRunRefused, OutOfOrderRefused
from migrator.source import Migration
from migrator.status import Status


class GoMigrationRefused(InputError):
    """A command would have to run a Go migration: only a Go program that registers it can."""

    def __init__(self, migration: Migration, direction: Direction, before: int | None):
        self.migration = migration
        if direction is Direction.UP:
            what, advice = "apply it", "Apply it with that program"
            if before is not None:
                advice += f", or the SQL migrations before it with `up-to {before}`"
        else:
            what, advice = "roll it back", "Roll it back with that program"
        super().__init__(
            f"{migration.filename}: version {migration.version} is a Go migration, and this command would have to"
            f" {what}; only the Go program that registers it (with goose's library) can run it, the migrator runs"
            f" SQL. Nothing was changed. {advice}"
        )


def refuse_go(planned: list[Migration], direction: Direction) -> None:
    """GoMigrationRefused naming the lowest Go migration of ``planned``, and for ``up`` the
    planned version just below it, up to which the SQL files can still be applied."""
    go = [m for m in planned if m.go]
    if go:
        lowest = min(go)
        below = [m.version for m in planned if m.version < lowest.version]
        raise GoMigrationRefused(lowest, direction, max(below) if below and direction is Direction.UP else None)


@dataclass(frozen=True)
class Step:
    """One file to apply or roll back, parsed."""

    migration: Migration
    direction: Direction
    parsed: ParsedMigration

    @property
    def tracking(self) -> str:
        """What finishing the step does to its version row, for messages."""
        return "recorded" if self.direction is Direction.UP else "removed"

    def line(self, number: int) -> int | None:
        """Where statement ``number`` starts in the file; None for the version row (0)."""
        return self.parsed.statements[number - 1].line if number else None

    def where(self, number: int) -> str:
        """The file and the statement ``number`` (0: the version row), for messages."""
        return place(self.migration.filename, self.direction, number, self.line(number))


def parse_step(migration: Migration, direction: Direction, env: Mapping[str, str] | None = None) -> Step:
    return Step(migration, direction, parse_file(migration.path, direction, env))


def refuse_drift(status: Status, versions: set[int] | None = None) -> None:
    """DriftRefused naming every applied file (of ``versions``, or all) that was edited or is gone."""
    edited = [m for m in status.edited if versions is None or m.version in versions]
    vanished = [e for e in status.vanished if versions is None or e.version in versions]
    if edited or vanished:
        raise DriftRefused(edited, vanished)


def refuse_unknown_target(target: int | None, migrations: list[Migration]) -> None:
    """InputError unless ``target`` is 0, None (the newest file) or the version of a file."""
    if target is not None and target != 0 and target not in {m.version for m in migrations}:
        raise InputError(
            f"migrate-to: no migration file has version {target}: it is not one of this directory's"
            " (or this image's) versions"
        )


def plan_up(
    status: Status,
    options: Options,
    *,
    target: int | None = None,
    by_one: bool = False,
    env: Mapping[str, str] | None = None,
    sql_only: bool = False,
) -> list[Step]:
    """The files ``up`` would apply, parsed, in order; refuses out-of-order and edited files,
    and Go migrations (``sql_only``: leaves them out instead, for reading the SQL files)."""
    if not options.allow_edited:
        refuse_drift(status)
    pending = [m for m in status.pending if target is None or m.version <= target]
    missing = [m for m in pending if m.version < status.highest]
    if missing and not options.allow_missing:
        raise OutOfOrderRefused(missing, status.highest)
    if sql_only:
        pending = [m for m in pending if not m.go]
    if by_one:
        pending = pending[:1]
    refuse_go(pending, Direction.UP)
    return [parse_step(m, Direction.UP, env) for m in pending]


def plan_down(
    status: Status,
    options: Options,
    *,
    target: int | None,
    reset: bool,
    env: Mapping[str, str] | None,
) -> list[Step]:
    """The files ``down`` would roll back, in goose's order: ``down`` and ``down-to``
    walk back from the most recently applied version (by the table's ids) and stop at
    the first at or below ``target``; ``reset`` takes every applied version, highest
    first, as goose's ``reset`` does."""
    latest_first = list(reversed(status.applied_order))
    if reset:
        versions = sorted(latest_first, reverse=True)
    elif target is None:
        versions = latest_first[:1]
    else:
        versions = list(takewhile(lambda v: v > target, latest_first))
    files = {s.migration.version: s.migration for s in status.migrations}
    for version in versions:
        if version not in files:
            raise InputError(f"version {version} is applied but has no migration file to roll it back")
    stray = [r for r in status.interrupted if not (r.direction is Direction.DOWN and r.version in versions)]
    if stray and not options.allow_interrupted:
        raise InterruptedRunRefused(stray)
    if not options.allow_edited:
        refuse_drift(status, set(versions))
    refuse_go([files[v] for v in versions], Direction.DOWN)
    return [parse_step(files[v], Direction.DOWN, env) for v in versions]
