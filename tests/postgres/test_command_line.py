"""The command line in this process: where each setting comes from, which command takes which
option, and how every kind of error becomes one line and an exit code.

They need no database, so they are the quick check of the contract in the tables of docs/migrator.md.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator.cli import commands, flags
from migrator.cli import program as cli
from migrator.cli.arguments import Arguments
from migrator.cli.command_table import BY_NAME, COMMANDS
from migrator.cli.exit_codes import HELP, exit_code
from migrator.errors import Interrupted, MigratorError
from migrator.options import Options
from migrator.safety import Safety
from migrator.table_name import TableName
from tests.support.cli_runner import help_of, run_cli

APPLYING = ("up", "up-by-one", "up-to", "down", "down-to", "redo", "reset", "migrate-to")
REHEARSING = ("rehearse", "drift")  # apply migrations on a scratch server, and take no advisory lock
WITH_ARGUMENT = {"up-to": "5", "down-to": "5", "migrate-to": "latest", "create": "add_x", "show": "00001_x.sql"}


def settings(*argv: str, **environ: str) -> Any:
    return cli.parse_arguments(list(argv), environ)[1]


def command_of(*argv: str) -> str:
    return cli.parse_arguments(list(argv), {})[0].name


def usage_error(*argv: str, **environ: str) -> str:
    with pytest.raises(flags.UsageError) as caught:
        settings(*argv, **environ)
    assert exit_code(caught.value) == 2
    return str(caught.value)


def command_line(command: str) -> list[str]:
    return [command, *([WITH_ARGUMENT[command]] if command in WITH_ARGUMENT else [])]


# -- docs/migrator.md's settings table: flag, then environment, then default --------------------

# setting: (flag, variable, a value, what the value becomes, the default)
SETTINGS_TABLE: dict[str, tuple[str, str | None, str, Any, Any]] = {
    "directory": ("--dir", "GOOSE_MIGRATION_DIR", "db/sql", Path("db/sql"), Path("migrations")),
    "table": ("--table", "GOOSE_TABLE", 'app."Goose"', TableName("app", "Goose"), TableName(None, "_migrations")),
    "dsn": ("--dsn", "POSTGRES_CONNECTION_STRING", "postgresql://h/db", "postgresql://h/db", ""),
    "lock_wait": ("--lock-timeout", None, "90s", 90.0, 900.0),
    "safety.lock_timeout": ("--db-lock-timeout", "MIGRATOR_DB_LOCK_TIMEOUT", "2s", 2.0, 0.5),
    "safety.statement_timeout": ("--statement-timeout", "MIGRATOR_STATEMENT_TIMEOUT", "30m", 1800.0, 10800.0),
    "safety.lock_retries": ("--lock-retries", "MIGRATOR_LOCK_RETRIES", "3", 3, 15),
}


def read(setting: str, parsed: Arguments) -> Any:
    value: Any = parsed
    for part in setting.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("setting", SETTINGS_TABLE)
def test_each_setting_comes_from_its_flag_then_its_variable_then_its_default(setting: str) -> None:
    flag, variable, value, expected, default = SETTINGS_TABLE[setting]
    assert read(setting, settings("up")) == default
    assert read(setting, settings("up", flag, value)) == expected
    if variable is not None:
        assert read(setting, settings("up", **{variable: value})) == expected
        # The flag wins over the variable, which is then not even checked.
        assert read(setting, settings("up", flag, value, **{variable: "not-a-value"})) == expected


def test_the_connection_string_variables_in_their_order() -> None:
    assert settings("status", GOOSE_DBSTRING="postgresql://goose/db").dsn == "postgresql://goose/db"
    both = {"GOOSE_DBSTRING": "postgresql://goose/db", "POSTGRES_CONNECTION_STRING": "postgresql://ours/db"}
    assert settings("status", **both).dsn == "postgresql://ours/db"
    assert settings("status", "--dsn", "postgresql://flag/db", **both).dsn == "postgresql://flag/db"


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_timeouts_and_retries_belong_to_the_commands_that_apply(command: str) -> None:
    environ = {"MIGRATOR_DB_LOCK_TIMEOUT": "2s", "MIGRATOR_STATEMENT_TIMEOUT": "1m", "MIGRATOR_LOCK_RETRIES": "0"}
    parsed = settings(*command_line(command), **environ)
    if command in APPLYING:
        assert parsed.safety == Safety(lock_timeout=2.0, statement_timeout=60.0, lock_retries=0)
        assert settings(*command_line(command), "--lock-timeout", "1s").lock_wait == 1.0
    elif command in REHEARSING:
        assert parsed.safety == Safety(lock_timeout=2.0, statement_timeout=60.0, lock_retries=0)
        refused = usage_error(*command_line(command), "--lock-timeout", "1s")
        assert refused == f"unrecognized arguments: --lock-timeout 1s (see `python -m migrator {command} --help`)"
    else:
        # Read and authoring commands run no migration: the variables are not even checked.
        assert not hasattr(parsed, "safety")
        assert settings(*command_line(command), MIGRATOR_LOCK_RETRIES="x") == parsed
        refused = usage_error(*command_line(command), "--lock-timeout", "1s")
        assert refused == f"unrecognized arguments: --lock-timeout 1s (see `python -m migrator {command} --help`)"


def test_each_refusal_flag_sets_only_its_own_option() -> None:
    flags = {
        "--allow-missing": "allow_missing",
        "--allow-edited": "allow_edited",
        "--accept-edited": "accept_edited",
        "--allow-interrupted": "allow_interrupted",
        "--allow-down": "allow_down",
    }
    assert settings("migrate-to", "7").options == Options()
    for flag, field in flags.items():
        assert settings("migrate-to", "7", flag).options == replace(Options(), **{field: True}), flag


def test_the_switches_of_the_read_and_authoring_commands() -> None:
    plain = settings("show", "a.sql")
    assert (plain.as_json, plain.down, plain.file) == (False, False, "a.sql")
    both = settings("show", "a.sql", "--down", "--json")
    assert (both.as_json, both.down) == (True, True)
    assert settings("lint").every_file is False
    assert settings("lint", "--all").every_file is True
    assert settings("create", "add_users").sequential is False
    for flag in ("-s", "--sequential"):
        created = settings("create", "add_users", "sql", flag)
        assert (created.sequential, created.name, command_of("create", "add_users", "sql", flag)) == (
            True,
            "add_users",
            "create",
        )
    assert "invalid choice: 'go'" in usage_error("create", "add_users", "go")
    assert settings("up-to", "42").version == 42
    assert not hasattr(settings("up"), "version")


def test_options_written_before_the_command_count_as_goose_allows() -> None:
    parsed = settings("--dir", "status", "--table", "t", "--json", "--dsn", "postgresql://h/d", "status")
    # "--dir status": a directory named like a command is the flag's value, not the command.
    argv = ("--dir", "status", "--table", "t", "--json", "--dsn", "postgresql://h/d", "status")
    assert (command_of(*argv), parsed.directory, str(parsed.table), parsed.as_json) == (
        "status",
        Path("status"),
        "t",
        True,
    )
    assert settings("--lock-retries", "2", "up").safety.lock_retries == 2
    # A command's option takes its value too: the command is the word after it, not its value.
    assert usage_error("--lock-retries", "status", "up") == (
        "--lock-retries (or MIGRATOR_LOCK_RETRIES) must be a whole number, got 'status'"
    )
    after = settings("status", "--dir", "d")
    assert after.directory == Path("d")
    # A global option before the command is not undone by the command's own default.
    assert settings("--dir", "d", "status").directory == Path("d")
    assert usage_error("--lock-retries", "2", "status") == (
        "unrecognized arguments: --lock-retries 2 (see `python -m migrator status --help`)"
    )
    assert "expected one argument" in usage_error("status", "--dir")
    # A flag that ends the line has no value to take, not the next token's place.
    assert usage_error("--dir") == "argument --dir: expected one argument (see `python -m migrator --help`)"


def test_version_before_any_command_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        settings("--version", "status")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("migrator ")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["up", "--lock-retries", "x"],
            {},
            "--lock-retries (or MIGRATOR_LOCK_RETRIES) must be a whole number, got 'x'",
        ),
        (["up"], {"MIGRATOR_LOCK_RETRIES": "-1"}, "must be a whole number, got '-1'"),
        # Digits of other scripts are digits to str.isdigit, but not to PostgreSQL or a reader.
        (["up"], {"MIGRATOR_LOCK_RETRIES": "\u0663"}, "must be a whole number, got '\u0663'"),
        (["up", "--db-lock-timeout", "5"], {}, "--db-lock-timeout: invalid duration '5'"),
        (["up"], {"MIGRATOR_STATEMENT_TIMEOUT": "0ms"}, "--statement-timeout: duration '0ms' is under 1ms"),
        (["up", "--lock-timeout", "soon"], {}, "--lock-timeout: invalid duration 'soon'"),
        (["status", "--table", "a.b.c"], {}, "table name 'a.b.c' must be 'table' or 'schema.table'"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(MigratorError) as caught:
        settings(*argv, **environ)
    assert exit_code(caught.value) == 2
    assert message in str(caught.value)


def test_the_checksum_manifest_is_read_from_the_file_its_variable_names(tmp_path: Path) -> None:
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text("abc  00001_a.sql\n")
    assert settings("up", MIGRATOR_CHECKSUMS=str(manifest)).manifest == "abc  00001_a.sql\n"
    assert settings("up").manifest is None
    assert settings("up", MIGRATOR_CHECKSUMS=str(tmp_path / "absent")).manifest is None


def test_a_command_is_required() -> None:
    expected = "the following arguments are required: COMMAND (see `python -m migrator --help`)"
    assert usage_error() == expected
    assert usage_error("--dir", "migrations", "--table", "goose_db_version") == expected
    # The last word is the option's value even when it names a command.
    assert usage_error("--dir", "status") == expected


# -- the help ------------------------------------------------------------------------------


def test_the_help_names_every_command_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys=capsys)
    assert text.startswith("usage: python -m migrator [-h] [--version] [--dir DIR] [--table TABLE] [--dsn DSN] COMMAND")
    assert " COMMAND ... Apply goose SQL migrations to PostgreSQL, goose-compatibly. options: " in text
    for command in COMMANDS:
        assert f"{command.name} {command.help}" in text
    assert text.endswith(" ".join(HELP.split()))
    assert "global options: --dir DIR migrations directory (env GOOSE_MIGRATION_DIR, default migrations)" in text
    assert "--table TABLE version table (env GOOSE_TABLE, default _migrations)" in text
    assert "--dsn DSN database URL (env POSTGRES_CONNECTION_STRING or GOOSE_DBSTRING) commands:" in text


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_each_command_has_its_help_its_argument_and_its_options(
    command: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command.name, capsys=capsys)
    assert text.startswith(f"usage: python -m migrator {command.name} [-h]")
    assert f" {command.help} " in text
    assert text.endswith(" ".join(HELP.split()))
    positional = [source for _, source, _ in flags.sources(command.takes) if source.kind is flags.Kind.ARGUMENT]
    if positional:
        assert f"positional arguments: {positional[0].metavar} {positional[0].help} " in text
    assert "global options: --dir DIR migrations directory" in text


# -- main: every error is one line and an exit code ---------------------------------------


def handle(monkeypatch: pytest.MonkeyPatch, command: str, handler: Callable[[Any], None]) -> None:
    """Let ``handler`` stand in for the command's own, for this test."""
    monkeypatch.setattr(commands, BY_NAME[command].handler, handler)


def test_a_usage_error_points_at_the_help() -> None:
    unknown = run_cli("frobnicate")
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr.startswith("migrator: error: argument COMMAND: invalid choice: 'frobnicate'")
    assert unknown.stderr.endswith("(see `python -m migrator --help`)\n")
    foreign = run_cli("status", "--allow-down")
    assert foreign.returncode == 2
    assert foreign.stderr == (
        "migrator: error: unrecognized arguments: --allow-down (see `python -m migrator status --help`)\n"
    )


def test_errors_are_also_json_on_stdout_with_json(tmp_path: Path) -> None:
    as_json = run_cli("show", "missing.sql", "--json", "--dir", str(tmp_path))
    assert as_json.returncode == 2
    document = json.loads(as_json.stdout)
    assert document["exit_code"] == 2
    assert as_json.stderr == f"migrator: error: {document['error']}\n"
    assert "missing.sql" in document["error"]
    plain = run_cli("show", "missing.sql", "--dir", str(tmp_path))
    assert (plain.returncode, plain.stdout) == (2, "")


@pytest.mark.parametrize(
    "typed", [["postgres://app:s3cret@db/app"], ["host=db password=s3cret"], ["password", "=", "s3cret"]]
)
def test_a_dsn_typed_without_dsn_is_refused_without_its_password(typed: list[str]) -> None:
    refused = run_cli("status", *typed, dsn="")
    assert refused.returncode == 2
    assert refused.stderr.startswith("migrator: error: unrecognized arguments: ")
    assert "s3cret" not in refused.stderr
    assert "********" in refused.stderr


def test_a_database_error_is_one_line_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(parsed: Arguments) -> None:
        raise psycopg.OperationalError(f"could not\n  talk to {parsed.dsn}")

    handle(monkeypatch, "status", fail)
    result = run_cli("status", "--json", "--dsn", "postgresql://u:s3cret-pw@127.0.0.1/db")
    assert result.returncode == 1
    assert result.stderr == "migrator: error: database: could not talk to ********\n"
    assert json.loads(result.stdout) == {"error": "database: could not talk to ********", "exit_code": 1}


def test_a_migrator_error_is_redacted_and_keeps_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(parsed: Arguments) -> None:
        raise MigratorError(f"cannot reach {parsed.dsn}")

    handle(monkeypatch, "version", fail)
    result = run_cli("version", "--dsn", "postgresql://u:hunter22@h/db")
    assert (result.returncode, result.stderr) == (1, "migrator: error: cannot reach ********\n")


@pytest.mark.parametrize(("signal_sent", "exit_code"), [(None, 130), (signal.SIGTERM, 143)])
def test_an_interruption_exits_with_its_signal(
    monkeypatch: pytest.MonkeyPatch, signal_sent: signal.Signals | None, exit_code: int
) -> None:
    def interrupted_by(exception: type[BaseException], message: str) -> Callable[[Arguments], None]:
        def handler(parsed: Arguments) -> None:
            if signal_sent is not None:
                # main's handler turns the signal into KeyboardInterrupt, which the migrator
                # turns into Interrupted once PostgreSQL cancelled the statement.
                with pytest.raises(KeyboardInterrupt):
                    os.kill(os.getpid(), signal_sent)
            raise exception(message)

        return handler

    handle(monkeypatch, "version", interrupted_by(Interrupted, "stopped in 00002_b.sql"))
    stopped = run_cli("version")
    assert (stopped.returncode, stopped.stderr) == (exit_code, "migrator: error: stopped in 00002_b.sql\n")
    handle(monkeypatch, "version", interrupted_by(KeyboardInterrupt, ""))
    interrupted = run_cli("version")
    assert interrupted.returncode == exit_code
    assert interrupted.stderr == (
        "migrator: error: interrupted: files applied before this point stay applied; see `status`\n"
    )


def test_a_command_that_succeeds_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Arguments] = []
    handle(monkeypatch, "version", ran.append)
    result = run_cli("version", "--dsn", "postgresql://h/d")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert [(type(s), s.dsn) for s in ran] == [(Arguments, "postgresql://h/d")]
