"""Hostile input against a real PostgreSQL: bad files, bad connection strings, bad flags.

Each case must end with one clear error line, the contract's exit code and an unchanged
database; none may print a traceback or any part of a password.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import conninfo

from tests.support import REPO, MigrationDir, query, server_role, tables, unavailable, versions
from tests.support.cli_runner import one_error, run_cli
from tests.support.migrator_process import AnotherUser, another_user_runtime, run_migrator

GOOD = "-- +goose Up\nCREATE TABLE good (id int);\n-- +goose Down\nDROP TABLE good;\n"


# -- 1. bytes PostgreSQL cannot carry ---------------------------------------------------


def test_nul_byte_is_refused_by_every_command_before_anything_runs(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, "CREATE TABLE victims (id int); INSERT INTO victims VALUES (1), (2)")
    path = migrations.path / "00001_cleanup.sql"
    path.write_bytes(b"-- +goose Up\nDELETE FROM victims\x00 WHERE id = 1;\n")
    for command in (["validate"], ["show", path.name], ["plan"], ["up"], ["lint", "--all"]):
        error = one_error(run_cli(*command, dsn=dsn, directory=migrations.path))
        assert "00001_cleanup.sql:2: NUL byte" in error, command
    assert query(dsn, "SELECT count(*) FROM victims") == [(2,)]
    assert "_migrations" not in tables(dsn)


def test_nul_byte_in_a_down_section_is_refused_before_rolling_back(dsn: str, migrations: MigrationDir) -> None:
    path = migrations.add("00001_t.sql", "-- +goose Up\nCREATE TABLE t (id int);\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    path.write_bytes(path.read_bytes() + b"-- +goose Down\nDROP TABLE t\x00;\n")
    error = one_error(run_cli("down", "--allow-edited", dsn=dsn, directory=migrations.path))
    assert "00001_t.sql:4: NUL byte" in error
    assert versions(dsn) == [0, 1]


def test_byte_order_mark_is_named(migrations: MigrationDir) -> None:
    (migrations.path / "00001_bom.sql").write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    error = one_error(run_cli("validate", directory=migrations.path))
    assert "00001_bom.sql:1: the file starts with a UTF-8 byte order mark (BOM)" in error


# -- 2. passwords in connection strings --------------------------------------------------

LEAKY_DSNS = [
    "postgresql://app:Xq7/SecretPw91@127.0.0.1/db",
    "postgresql://app:Xq7@SecretPw91@127.0.0.1",
    "postgresql://app:Xq7@Sec:retPw91@127.0.0.1",
    "postgresql://app:Xq7#SecretPw91@127.0.0.1/db",
    "host=127.0.0.1 password=Xq7 SecretPw91",
    "host=127.0.0.1 password='Xq7SecretPw91",
]


@pytest.mark.parametrize("dsn", LEAKY_DSNS)
def test_malformed_dsn_is_refused_without_echoing_it(migrations: MigrationDir, dsn: str) -> None:
    error = one_error(run_cli("status", dsn=dsn, directory=migrations.path))
    assert "cannot be read unambiguously" in error
    for fragment in ("SecretPw91", "retPw91", "Xq7"):
        assert fragment not in error


def test_non_numeric_port_is_bad_input(migrations: MigrationDir) -> None:
    error = one_error(run_cli("status", dsn="postgresql://app:pw@127.0.0.1:notaport/db", directory=migrations.path))
    assert "port" in error
    assert "pw@" not in error


def test_dsn_that_is_not_utf8_is_bad_input(migrations: MigrationDir) -> None:
    result = run_cli("status", "--dir", str(migrations.path), b"--dsn=postgresql://a:p\xffw@h/d")
    error = one_error(result)
    assert "not valid UTF-8" in error


def test_a_one_letter_password_masks_only_itself(pg_admin_dsn: str, migrations: MigrationDir) -> None:
    server_role(pg_admin_dsn, "hostile_e", "a-different-password")
    wrong = conninfo.make_conninfo(pg_admin_dsn, user="hostile_e", password="e")
    error = one_error(run_cli("status", dsn=wrong, directory=migrations.path), exit_code=1)
    assert 'password authentication failed for user "hostile_e"' in error


def test_a_password_equal_to_the_user_name_leaves_the_user_named(pg_admin_dsn: str, migrations: MigrationDir) -> None:
    server_role(pg_admin_dsn, "samename", "not-samename")
    wrong = conninfo.make_conninfo(pg_admin_dsn, user="samename", password="samename", dbname="samename")
    error = one_error(run_cli("status", dsn=wrong, directory=migrations.path), exit_code=1)
    assert 'for user "samename"' in error
    assert "cannot connect to samename on 127.0.0.1" in error


def test_percent_encoded_password_never_printed(pg_admin_dsn: str, migrations: MigrationDir) -> None:
    server_role(pg_admin_dsn, "encoded", "p@ss/w:rd")
    params = conninfo.conninfo_to_dict(pg_admin_dsn)
    url = f"postgresql://encoded:p%40ss%2Fw%3Ard@127.0.0.1:{params['port']}/no_such_db"
    error = one_error(run_cli("status", dsn=url, directory=migrations.path), exit_code=1)
    assert 'database "no_such_db" does not exist' in error
    for form in ("p@ss/w:rd", "p%40ss%2Fw%3Ard", "p%40ss"):
        assert form not in error


# -- 6. durations that would mean something else in PostgreSQL ---------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--db-lock-timeout", "0.1ms"],
        ["--db-lock-timeout", "0s"],
        ["--statement-timeout", "0ms"],
        ["--statement-timeout", "99999999h"],
        ["--lock-timeout", "0s"],
        ["--lock-timeout", "5 minutes"],
    ],
)
def test_durations_out_of_bounds_are_refused_before_connecting(
    dsn: str, migrations: MigrationDir, flags: list[str]
) -> None:
    migrations.add("00001_good.sql", GOOD)
    error = one_error(run_cli("up", *flags, dsn=dsn, directory=migrations.path))
    assert flags[0] in error
    assert "_migrations" not in tables(dsn)


def test_a_duration_from_the_environment_is_checked_too(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_good.sql", GOOD)
    result = run_cli("up", dsn=dsn, directory=migrations.path, env={"MIGRATOR_STATEMENT_TIMEOUT": "0.2ms"})
    assert "under 1ms" in one_error(result)
    assert "_migrations" not in tables(dsn)


# -- 4, 13. show (create and fix: tests/unit/test_authoring.py) -------------------------


def test_show_names_a_file_it_cannot_find(migrations: MigrationDir) -> None:
    error = one_error(run_cli("show", "00009_nothing.sql", directory=migrations.path))
    assert error.strip() == "migrator: error: 00009_nothing.sql: no such migration file"


# -- 5. transaction control: tests/goose/test_own_transaction.py runs a transactional file's own COMMIT ---


def test_begin_inside_a_function_body_or_do_block_is_not_transaction_control(
    dsn: str, migrations: MigrationDir
) -> None:
    migrations.add(
        "00001_plpgsql.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n"
        "BEGIN\n  RETURN 1;\nEND;\n$$;\n-- +goose StatementEnd\n-- +goose StatementBegin\n"
        "DO $$ BEGIN PERFORM f(); END $$;\n-- +goose StatementEnd\n",
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert versions(dsn) == [0, 1]


def test_transaction_control_is_allowed_without_a_transaction(dsn: str, migrations: MigrationDir) -> None:
    migrations.add(
        "00001_own_tx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nBEGIN;\nCREATE TABLE own (id int);\nCOMMIT;\n"
    )
    result = run_cli("up", dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    assert "own" in tables(dsn)


# -- 10, 11. table names -----------------------------------------------------------------


def test_a_table_name_whose_ledger_name_would_be_cut_is_refused(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_good.sql", GOOD)
    error = one_error(run_cli("up", "--table", "t" * 57, dsn=dsn, directory=migrations.path))
    assert "at most 56 bytes" in error
    assert tables(dsn) == set()
    fits = run_cli("up", "--table", "t" * 56, dsn=dsn, directory=migrations.path)
    assert fits.returncode == 0, fits.stderr
    assert {"t" * 56, "t" * 56 + "_ledger"} <= tables(dsn)


def test_quoted_table_names_are_understood_as_goose_writes_them(dsn: str, migrations: MigrationDir) -> None:
    query(dsn, 'CREATE SCHEMA "Weird"')
    migrations.add("00001_good.sql", GOOD)
    result = run_cli("up", "--table", '"Weird"."T"', dsn=dsn, directory=migrations.path)
    assert result.returncode == 0, result.stderr
    columns = query(
        dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'Weird' AND table_name = 'T'"
        " ORDER BY ordinal_position",
    )
    assert columns == [("id",), ("version_id",), ("is_applied",), ("tstamp",)]
    status = json.loads(
        run_cli("status", "--json", "--table", '"Weird"."T"', dsn=dsn, directory=migrations.path).stdout
    )
    assert status["table"] == '"Weird"."T"'
    assert status["pending"] == []


# -- tracebacks and sloppy edges ---------------------------------------------------------


def test_symlink_loop_and_dangling_symlink_and_directory_are_reported(migrations: MigrationDir) -> None:
    loop = migrations.path / "00001_loop.sql"
    loop.symlink_to(loop)
    assert "00001_loop.sql: cannot be read" in one_error(run_cli("validate", directory=migrations.path))
    loop.unlink()
    (migrations.path / "00002_gone.sql").symlink_to(migrations.path / "nowhere.sql")
    assert "00002_gone.sql: a symbolic link to nothing" in one_error(run_cli("validate", directory=migrations.path))
    (migrations.path / "00002_gone.sql").unlink()
    (migrations.path / "00003_dir.sql").mkdir()
    assert "00003_dir.sql: a directory" in one_error(run_cli("validate", directory=migrations.path))


@contextmanager
def readable_by_all() -> Iterator[Path]:
    """A folder everyone can enter (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory() as parent:
        os.chmod(parent, 0o755)
        yield Path(parent)


@pytest.fixture(scope="module")
def nobody() -> Iterator[AnotherUser]:
    """uid 65534, running the migrator from a copy it can read, wherever the checkout lies."""
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) runs the migrator as an unprivileged user")
    with readable_by_all() as parent:
        yield AnotherUser(65534, another_user_runtime(parent / "runtime"))


@pytest.fixture
def public_migrations() -> Iterator[MigrationDir]:
    """A migrations directory an unprivileged user can reach."""
    with readable_by_all() as parent:
        directory = parent / "migrations"
        directory.mkdir()
        yield MigrationDir(directory)
        directory.chmod(0o755)


def validate_as(user: AnotherUser, migrations: MigrationDir) -> subprocess.CompletedProcess[str]:
    """``validate`` as an unprivileged user: root reads files whatever their mode."""
    return run_migrator("validate", "--dir", str(migrations.path), user=user)


def test_unreadable_directory_is_reported(nobody: AnotherUser, public_migrations: MigrationDir) -> None:
    public_migrations.add("00001_good.sql", GOOD)
    assert validate_as(nobody, public_migrations).returncode == 0  # reachable: the mode below is the cause
    public_migrations.path.chmod(0o000)
    refused = one_error(validate_as(nobody, public_migrations))
    assert "cannot list the migrations directory: Permission denied" in refused


def test_unreadable_file_is_named_with_the_cause(nobody: AnotherUser, public_migrations: MigrationDir) -> None:
    public_migrations.add("00001_good.sql", GOOD)
    public_migrations.add("00002_secret.sql", GOOD)
    (public_migrations.path / "00002_secret.sql").chmod(0o000)
    assert one_error(validate_as(nobody, public_migrations)).splitlines() == [
        "migrator: 00002_secret.sql: cannot read: Permission denied",
        "migrator: error: 1 of 2 migration(s) do not parse",
    ]


def test_another_user_runs_the_migrator_from_a_checkout_under_a_folder_only_root_may_enter(
    tmp_path: Path, public_migrations: MigrationDir
) -> None:
    """A clone in a 0700 folder: the other user can neither enter it nor read its virtualenv;
    it runs the checkout's own migrator from the copy another_user_runtime makes of it."""
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) runs the migrator as an unprivileged user")
    private = tmp_path / "private"
    checkout = private / "checkout"
    shutil.copytree(REPO / "migrator", checkout / "migrator", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", checkout / "pyproject.toml")
    init = checkout / "migrator" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]*"', '__version__ = "0-hidden-checkout"', init.read_text()))
    private.chmod(0o700)
    public_migrations.add("00001_good.sql", GOOD)
    with readable_by_all() as parent:
        user = AnotherUser(65534, another_user_runtime(parent / "runtime", repo=checkout))
        # Reading the checkout where it lies, as the tests did: the other user cannot.
        blocked = subprocess.run(
            [*user.python(), "-c", "import migrator"],
            env={**os.environ, "PYTHONPATH": str(checkout)},
            cwd=parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert blocked.returncode == 1
        assert "ModuleNotFoundError: No module named 'migrator'" in blocked.stderr
        assert run_migrator("--version", user=user).stdout == "migrator 0-hidden-checkout\n"
        assert run_migrator("validate", "--dir", str(public_migrations.path), user=user).stdout == (
            "migrator: 1 migration(s) valid\n"
        )


def test_a_file_as_the_directory_is_named_not_a_directory() -> None:
    assert "/etc/passwd: not a directory" in one_error(run_cli("status", directory=Path("/etc/passwd")))


@pytest.mark.parametrize("version", ["²", "١٢", "-1", "1e3", ""])
def test_versions_are_ascii_digits_only(dsn: str, migrations: MigrationDir, version: str) -> None:
    migrations.add("00001_good.sql", GOOD)
    error = one_error(run_cli("up-to", version, dsn=dsn, directory=migrations.path))
    assert "digits 0-9" in error or "expected one argument" in error
    assert "_migrations" not in tables(dsn)


@pytest.mark.parametrize(
    "command", [["up", "--json"], ["status", "--down"], ["up", "-s"], ["status", "--all"], ["version", "--json"]]
)
def test_options_of_other_commands_are_refused(dsn: str, migrations: MigrationDir, command: list[str]) -> None:
    error = one_error(run_cli(*command, dsn=dsn, directory=migrations.path))
    assert "unrecognized arguments" in error
    assert tables(dsn) == set()


def test_options_may_stand_before_the_command(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_good.sql", GOOD)
    result = run_cli("--json", "--lock-timeout", "1m", "--dir", str(migrations.path), "status", dsn=dsn)
    assert result.returncode == 2  # --lock-timeout does not belong to status
    status = run_cli("--json", "--dir", str(migrations.path), "status", dsn=dsn)
    assert json.loads(status.stdout)["pending"] == [1]


def test_json_errors_are_json_on_stdout(migrations: MigrationDir) -> None:
    result = run_cli("status", "--json", dsn="postgresql://a:b@127.0.0.1:notaport/x", directory=migrations.path)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert "port" in document["error"]


def test_usage_and_runtime_errors_share_one_prefix(migrations: MigrationDir) -> None:
    usage = run_cli("frobnicate", directory=migrations.path)
    runtime = run_cli("show", "missing.sql", directory=migrations.path)
    for result in (usage, runtime):
        assert result.stderr.startswith("migrator: error: "), result.stderr


def test_validate_reports_each_bad_file_once(migrations: MigrationDir) -> None:
    migrations.add("00001_bad.sql", "SELECT 1;\n")
    migrations.add("00002_good.sql", GOOD)
    result = run_cli("validate", directory=migrations.path)
    assert result.returncode == 2
    assert result.stderr.count("00001_bad.sql") == 1
    assert "1 of 2 migration(s) do not parse" in result.stderr


def test_connect_timeout_in_the_dsn_is_honoured(migrations: MigrationDir) -> None:
    # A listener that completes the TCP handshake and then never answers, on loopback.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        dsn = f"postgresql://u:pw@127.0.0.1:{port}/db?connect_timeout=2"
        result = run_migrator("status", dsn=dsn, directory=migrations.path, timeout=8)
    error = one_error(result, exit_code=1)
    assert "cannot connect to db on 127.0.0.1" in error
