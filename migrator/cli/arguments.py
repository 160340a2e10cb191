"""What each command takes, as one frozen class per command: every field is declared once
(flags.py) with its flag or argument, its variable and its default, and whether the command
writes is said by the class it derives from. A new option is one field here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from migrator.cli.flags import (
    Kind,
    Source,
    UsageError,
    Where,
    argument,
    environment,
    group,
    option,
    repeated,
    switch,
    switch_source,
    variable,
)
from migrator.durations import duration_text, parse_duration
from migrator.options import Options
from migrator.safety import Safety
from migrator.table_name import DEFAULT_TABLE, TableName

# A sha256sum listing of the migrations directory, written when the image is built. Its
# files cannot change after that, so a run inside the image need not read every file.
MANIFEST_ENV = "MIGRATOR_CHECKSUMS"
SCRATCH_DSN_ENV = "MIGRATOR_SCRATCH_DSN"


def _manifest(location: str, where: Where) -> str | None:
    try:
        return Path(location).read_text()
    except OSError:
        return None


# -- how text becomes each type -----------------------------------------------------------


def _duration(text: str, where: Where) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{where.name}: {exc}") from None


def _whole_number(text: str, where: Where) -> int:
    # str.isdigit() also takes '²' and Arabic-Indic digits: a count is ASCII digits only.
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{where.name} (or {' or '.join(where.env)}) must be a whole number, got {text!r}")
    return int(text)


def _version(text: str, where: Where) -> int:
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"{where.name} must be a whole number written in digits 0-9, got {text!r}")
    return int(text)


def _version_or_latest(text: str, where: Where) -> int | None:
    return None if text == "latest" else _version(text, where)


_ROLLBACK_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _rollback_id(text: str, where: Where) -> str:
    if not _ROLLBACK_ID.fullmatch(text):
        raise UsageError(f"{where.name} must be 1 to 64 letters, digits, '.', '_' or '-', got {text!r}")
    return text


def _path(text: str, where: Where) -> Path:
    return Path(text)


def _table(text: str, where: Where) -> TableName:
    return TableName.parse(text)


def _default_table() -> TableName:
    return TableName.parse(DEFAULT_TABLE)


def _duration_source(flag: str, env: str, help: str) -> Source:
    return Source(Kind.OPTION, (flag,), help, "DURATION", (env,), _duration, duration_text)


# -- the options more than one command takes -----------------------------------------------

ALLOW_MISSING = switch_source("--allow-missing", help="apply pending files older than the highest applied version")
ALLOW_EDITED = switch_source("--allow-edited", help="go on this once although an applied file was edited or removed")
ACCEPT_EDITED = switch_source("--accept-edited", help="record the edited applied files' new checksums, then go on")
ALLOW_INTERRUPTED = switch_source(
    "--allow-interrupted", help="roll back although a NO TRANSACTION file is recorded as interrupted"
)
ALLOW_DOWN = switch_source("--allow-down", help="roll back when VERSION is below the database's version")


def _safety() -> Safety:
    """The timeouts and retries of a command that applies migrations; defaults are Safety's."""
    lock_retries = Source(
        Kind.OPTION, ("--lock-retries",), "retries of a file blocked by a lock", "N", ("MIGRATOR_LOCK_RETRIES",),
        _whole_number,
    )  # fmt: skip
    safety: Safety = group(
        Safety,
        lock_timeout=_duration_source(
            "--db-lock-timeout", "MIGRATOR_DB_LOCK_TIMEOUT", "lock_timeout of each attempt of a migration"
        ),
        statement_timeout=_duration_source("--statement-timeout", "MIGRATOR_STATEMENT_TIMEOUT", "statement_timeout"),
        lock_retries=lock_retries,
    )
    return safety


def _refusals(**allowed: Source) -> Options:
    """The refusals a command lets the operator go past, as the library's Options."""
    options: Options = group(Options, **allowed)
    return options


# -- every command's -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Arguments:
    """What every command takes: where the migrations and the database are."""

    writes: ClassVar[bool] = False

    directory: Path = option(
        "--dir", metavar="DIR", env="GOOSE_MIGRATION_DIR", convert=_path, default=Path("migrations"),
        help="migrations directory", everywhere=True,
    )  # fmt: skip
    table: TableName = option(
        "--table", metavar="TABLE", env="GOOSE_TABLE", convert=_table, default_factory=_default_table,
        help="version table", everywhere=True,
    )  # fmt: skip
    dsn: str = option(
        "--dsn", metavar="DSN", env=("POSTGRES_CONNECTION_STRING", "GOOSE_DBSTRING"), default="",
        help="database URL", everywhere=True,
    )  # fmt: skip
    # What to say when there is no DSN at all (the job names the Nomad variable to create).
    missing_database: str = variable("MIGRATOR_MISSING_DATABASE")
    # The image's checksum manifest, see MANIFEST_ENV.
    manifest: str | None = variable(MANIFEST_ENV, default=None, convert=_manifest)
    # The variables a migration's ENVSUB section substitutes.
    environ: Mapping[str, str] = environment()


@dataclass(frozen=True, kw_only=True)
class Json(Arguments):
    """A command that can print one JSON document instead of text."""

    as_json: bool = switch("--json", help="print one JSON document")


@dataclass(frozen=True, kw_only=True)
class Applying(Arguments):
    """A command that applies or rolls back migrations under goose's advisory lock."""

    writes: ClassVar[bool] = True

    # How long to wait for goose's advisory lock (not PostgreSQL's lock_timeout).
    lock_wait: float = option(
        "--lock-timeout", metavar="DURATION", convert=_duration, show=duration_text, default=15 * 60.0,
        help="wait for goose's advisory lock",
    )  # fmt: skip
    safety: Safety = _safety()
    run_timeout: float | None = option(
        "--run-timeout", metavar="DURATION", env="MIGRATOR_RUN_TIMEOUT", convert=_duration,
        help="budget of the whole run once it holds the lock: no statement runs past it",
    )  # fmt: skip
    # Where the run happens, recorded in its history (the image and Nomad set these).
    image: str = variable("MIGRATOR_IMAGE")
    allocation: str = variable("NOMAD_ALLOC_ID")
    deployment: str = variable("MIGRATOR_DEPLOYMENT")


@dataclass(frozen=True, kw_only=True)
class Up(Applying):
    """up and up-by-one: apply pending files."""

    options: Options = _refusals(allow_missing=ALLOW_MISSING, allow_edited=ALLOW_EDITED, accept_edited=ACCEPT_EDITED)


@dataclass(frozen=True, kw_only=True)
class UpTo(Up):
    """up-to: apply pending files up to a version."""

    version: int = argument("VERSION", "highest version", convert=_version)


@dataclass(frozen=True, kw_only=True)
class Down(Applying):
    """down, redo and reset: roll back applied files."""

    options: Options = _refusals(
        allow_edited=ALLOW_EDITED, accept_edited=ACCEPT_EDITED, allow_interrupted=ALLOW_INTERRUPTED
    )


@dataclass(frozen=True, kw_only=True)
class DownTo(Down):
    """down-to: roll back every file applied after a version."""

    version: int = argument("VERSION", "version to keep", convert=_version)


@dataclass(frozen=True, kw_only=True)
class MigrateTo(Applying):
    """migrate-to: move the database to exactly one version, up or down."""

    version: int | None = argument("VERSION", "a version of a migration file, or latest", convert=_version_or_latest)
    options: Options = _refusals(
        allow_down=ALLOW_DOWN, allow_missing=ALLOW_MISSING, allow_edited=ALLOW_EDITED, accept_edited=ACCEPT_EDITED,
        allow_interrupted=ALLOW_INTERRUPTED,
    )  # fmt: skip
    rollback_id: str | None = option(
        "--rollback-id", metavar="ID", convert=_rollback_id,
        help="the rollback this run carries: once a run with ID completed, going down is not done again",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Plan(Json):
    """plan: the pending files and their statements."""

    options: Options = _refusals(allow_missing=ALLOW_MISSING, allow_edited=ALLOW_EDITED)


@dataclass(frozen=True, kw_only=True)
class Lint(Arguments):
    """lint: squawk's findings on the pending files, or on every file."""

    every_file: bool = switch("--all", help="every file, not only pending ones")
    options: Options = _refusals(allow_missing=ALLOW_MISSING, allow_edited=ALLOW_EDITED)


@dataclass(frozen=True, kw_only=True)
class Rehearsing(Json):
    """Applies migrations on a scratch server (never the target, which is only read)."""

    scratch_dsn: str = option(
        "--scratch-dsn", metavar="DSN", env=SCRATCH_DSN_ENV, default="",
        help="a PostgreSQL server where a throwaway database may be created and dropped; never the target's data",
    )  # fmt: skip
    exclude_schemas: tuple[str, ...] = repeated(
        "--exclude-schema", metavar="SCHEMA", help="leave SCHEMA out of the drift comparison (may be repeated)"
    )
    safety: Safety = _safety()


@dataclass(frozen=True, kw_only=True)
class Rehearse(Rehearsing):
    """rehearse: the pending files applied on a scratch server first."""

    options: Options = _refusals(allow_missing=ALLOW_MISSING, allow_edited=ALLOW_EDITED)


@dataclass(frozen=True, kw_only=True)
class Create(Arguments):
    """create: a new migration file."""

    name: str = argument("NAME", "what the migration does, e.g. add_users")
    kind: str | None = argument("sql", "goose's type word; only sql", choices=("sql",), optional=True)
    sequential: bool = switch("-s", "--sequential", help="next sequential version instead of a UTC timestamp")


@dataclass(frozen=True, kw_only=True)
class Show(Json):
    """show: the statements one file yields."""

    file: str = argument("FILE", "file name or path")
    down: bool = switch("--down", help="the Down section instead of Up")
