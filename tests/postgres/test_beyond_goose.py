"""goose's table and squawk lint, against a real PostgreSQL (the checksums of applied files:
test_checksums.py; lock-safe DDL: test_lock_timeouts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.migration_status import lint_warnings
from migrator import lint as lint_module
from migrator.errors import InputError
from migrator.lint import Finding, squawk_binary
from migrator.parser import Direction, parse_file
from migrator.source import collect
from tests.support import REPO, MigrationDir, query, shipped_migrations
from tests.support.cli_runner import run_cli

A = "-- +goose Up\nCREATE TABLE a (id bigint);\n-- +goose Down\nDROP TABLE a;\n"


@pytest.fixture
def squawk() -> None:
    if squawk_binary() is None:
        pytest.fail("squawk (squawk-cli) is a declared dependency and must be installed", pytrace=False)


# -- goose's table (edited and removed files: test_checksums.py) -----------------------


def test_goose_table_keeps_goose_schema(dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", A)
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    columns = query(
        dsn,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_name = '_migrations' ORDER BY ordinal_position",
    )
    assert columns == [
        ("id", "integer", "NO"),
        ("version_id", "bigint", "NO"),
        ("is_applied", "boolean", "NO"),
        ("tstamp", "timestamp without time zone", "NO"),
    ]


# -- lint ------------------------------------------------------------------------------


def test_shipped_migrations_pass_lint(squawk: None) -> None:
    result = run_cli("lint", "--all", directory=REPO / "migrations")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"lint found nothing in {len(shipped_migrations())} file(s)" in result.stdout


def test_lint_all_reads_only_the_up_sections(squawk: None, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE a;\n")
    result = run_cli("lint", "--all", directory=migrations.path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "migrator: lint found nothing in 1 file(s)"


def test_plan_lists_each_pending_file_with_squawks_findings_under_the_config_beside_it(
    squawk: None, dsn: str, migrations: MigrationDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations.add("00001_a.sql", "-- +goose Up\nALTER TABLE a ADD COLUMN b int;\n")
    migrations.add("00002_no_tx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;\n\nSELECT 2;\n")
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["require-lock-timeout", "require-statement-timeout"]\n')
    elsewhere = tmp_path / "elsewhere"  # no config in the working directory: the one beside the files counts
    elsewhere.mkdir()
    text = run_cli("plan", dsn=dsn, directory=migrations.path, cwd=elsewhere)
    assert text.returncode == 0, text.stderr
    statements, lint_line = text.stdout.rsplit("-- lint: ", 1)
    assert statements == (
        "-- 00001_a.sql: 1 statement(s), in one transaction\n"
        "-- statement 1 (line 2)\nALTER TABLE a ADD COLUMN b int;\n"
        "-- 00002_no_tx.sql: 2 statement(s), NO TRANSACTION\n"
        "-- statement 1 (line 3)\nSELECT 1;\n-- statement 2 (line 5)\nSELECT 2;\n"
    )
    assert lint_line.startswith("00001_a.sql: statement 1 (line 2): warning prefer-bigint-over-int: ")
    document = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path, cwd=elsewhere).stdout)
    assert [(p["name"], [f["rule"] for f in p["lint"]]) for p in document["pending"]] == [
        ("00001_a.sql", ["prefer-bigint-over-int"]),
        ("00002_no_tx.sql", []),
    ]

    # Where squawk is not installed (the image has none), plan says so rather than "no findings".
    monkeypatch.setattr("migrator.lint.squawk_binary", lambda: None)
    without = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path).stdout)
    assert [p["lint"] for p in without["pending"]] == [None, None]
    assert "-- lint" not in run_cli("plan", dsn=dsn, directory=migrations.path).stdout

    query(dsn, "CREATE TABLE a (id bigint)")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    assert run_cli("plan", dsn=dsn, directory=migrations.path).stdout == "migrator: nothing pending\n"


def test_squawk_is_found_on_path_first_then_beside_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrations: MigrationDir
) -> None:
    """A virtualenv's bin/ (where pip puts squawk-cli's binary) need not be on PATH."""
    venv_bin, on_path = tmp_path / "venv" / "bin", tmp_path / "on-path"
    for folder in (venv_bin, on_path):
        folder.mkdir(parents=True)
        (folder / "squawk").write_text("#!/bin/sh\n")
        (folder / "squawk").chmod(0o755)
    monkeypatch.setattr("sys.executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    assert squawk_binary() == str(on_path / "squawk")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert squawk_binary() == str(venv_bin / "squawk")
    (venv_bin / "squawk").unlink()
    assert squawk_binary() is None

    migrations.add("00001_a.sql", A)
    result = run_cli("lint", "--all", directory=migrations.path, env={"PATH": str(tmp_path)})
    assert (result.returncode, result.stderr) == (
        2,
        "migrator: error: squawk is not installed: pip install squawk-cli\n",
    )


def test_lint_knows_which_files_run_in_a_transaction(squawk: None, migrations: MigrationDir) -> None:
    # squawk asks for IF NOT EXISTS only where a failure cannot roll the file back.
    body = "CREATE TABLE b (id bigint);\nALTER TABLE a ADD COLUMN c bigint;\n"
    migrations.add("00001_tx.sql", "-- +goose Up\n" + body)
    migrations.add("00002_no_tx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\n" + body)
    migrations.add(
        "00003_third.sql", "-- +goose Up\nSELECT 1;\n\nSELECT 2;\n-- the risky one\nALTER TABLE a DROP COLUMN b;\n"
    )
    result = run_cli("lint", "--all", directory=migrations.path)
    assert result.returncode == 4
    outside_transaction = "prefer-robust-stmts"
    rules = {(line.split(":")[0], line.split(" ")[6].rstrip(":")) for line in result.stdout.splitlines()}
    assert ("00001_tx.sql", outside_transaction) not in rules, result.stdout
    assert ("00002_no_tx.sql", outside_transaction) in rules, result.stdout
    assert "00003_third.sql: statement 3 (line 6): warning ban-drop-column: " in result.stdout


def test_lint_reads_only_the_config_it_is_given(
    squawk: None, migrations: MigrationDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squawk would pick up a .squawk.toml in its working directory: it runs beside the files."""
    path = migrations.add("00001_a.sql", "-- +goose Up\nALTER TABLE a DROP COLUMN b;\n")
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / ".squawk.toml").write_text('excluded_rules = ["ban-drop-column"]\n')
    monkeypatch.chdir(stray)
    findings = lint_module.lint([(collect(migrations.path)[0], parse_file(path, Direction.UP))], None)
    assert "ban-drop-column" in {finding.rule for finding in findings}


def test_a_no_transaction_file_is_linted_as_such_whatever_the_config_assumes(
    squawk: None, migrations: MigrationDir, tmp_path: Path
) -> None:
    config = tmp_path / ".squawk.toml"
    config.write_text("assume_in_transaction = true\n")
    body = "CREATE INDEX CONCURRENTLY a_idx ON a (id);\nALTER TABLE a VALIDATE CONSTRAINT fk;\n"
    path = migrations.add("00001_no_tx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\n" + body)
    findings = lint_module.lint([(collect(migrations.path)[0], parse_file(path, Direction.UP))], config)
    assert findings, "the other rules still apply"
    assert "ban-concurrent-index-creation-in-transaction" not in {finding.rule for finding in findings}


def test_a_finding_reads_as_one_line_with_squawks_advice() -> None:
    finding = Finding("00002_b.sql", 2, 6, "concurrent-index", "Warning", "Blocks writes.", None)
    assert str(finding) == "00002_b.sql: statement 2 (line 6): warning concurrent-index: Blocks writes."
    advised = Finding("00002_b.sql", 2, 6, "rule", "Error", "Blocks writes.", "Use CONCURRENTLY.")
    assert str(advised) == "00002_b.sql: statement 2 (line 6): error rule: Blocks writes. (Use CONCURRENTLY.)"


def fake_squawk(folder: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A squawk that runs ``script`` (sh) instead, where lint looks for squawk."""
    fake = folder / "squawk"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(lint_module, "squawk_binary", lambda: str(fake))
    return fake


def test_a_squawk_that_cannot_run_is_an_error_not_a_clean_bill(
    migrations: MigrationDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squawk exits 1 both for findings and for a config it cannot read; only the first prints JSON."""
    fake = fake_squawk(tmp_path, monkeypatch, "echo 'Configuration error: unknown variant' >&2\nexit 1")
    path = migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    migration = collect(migrations.path)[0]
    with pytest.raises(InputError, match=r"squawk failed \(exit 1\): Configuration error: unknown variant"):
        lint_module.lint([(migration, parse_file(path, Direction.UP))], None)
    fake.write_text("#!/bin/sh\nprintf '%0700d' 0 >&2\nexit 3\n")
    with pytest.raises(InputError) as failed:
        lint_module.lint([(migration, parse_file(path, Direction.UP))], None)
    assert str(failed.value) == "squawk failed (exit 3): " + "0" * 500, "squawk's message, cut to 500 characters"


def test_lint_sees_each_file_as_it_would_run_after_envsub(squawk: None, migrations: MigrationDir) -> None:
    """squawk lints the statements ENVSUB makes from the run's environment, not the file's text."""
    migrations.add(
        "00001_a.sql",
        "-- +goose ENVSUB ON\n-- +goose Up\nCREATE TABLE a (id bigint);\nALTER TABLE a ADD COLUMN b ${KIND};\n",
    )
    required = run_cli("lint", "--all", directory=migrations.path, env={"KIND": "text NOT NULL"})
    assert (required.returncode, required.stderr) == (4, "migrator: error: lint: 1 finding(s) in 1 of 1 file(s)\n")
    assert required.stdout.startswith("00001_a.sql: statement 2 (line 4): warning adding-required-field"), required
    optional = run_cli("lint", "--all", directory=migrations.path, env={"KIND": "text"})
    assert (optional.returncode, optional.stdout) == (0, "migrator: lint found nothing in 1 file(s)\n")


def test_lint_takes_the_refusal_options_the_run_would(squawk: None, dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00002_b.sql", "-- +goose Up\nCREATE TABLE b (id int);\n")
    assert run_cli("up", dsn=dsn, directory=migrations.path).returncode == 0
    migrations.add("00001_a.sql", A)
    refused = run_cli("lint", dsn=dsn, directory=migrations.path)
    assert (refused.returncode, refused.stderr) == (
        2,
        "migrator: error: 1 pending migration(s) older than the highest applied version 2: 00001_a.sql; apply them"
        " out of order with --allow-missing\n",
    )
    allowed = run_cli("lint", "--allow-missing", dsn=dsn, directory=migrations.path)
    assert (allowed.returncode, allowed.stdout) == (0, "migrator: lint found nothing in 1 file(s)\n")


def test_a_squawk_that_hangs_is_stopped_and_named(
    migrations: MigrationDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_squawk(tmp_path, monkeypatch, "exec sleep 20")
    monkeypatch.setattr(lint_module, "SQUAWK_TIMEOUT_SECONDS", 0.5)
    path = migrations.add("00001_a.sql", "-- +goose Up\nCREATE TABLE a (id int);\n")
    with pytest.raises(InputError) as failed:
        lint_module.lint([(collect(migrations.path)[0], parse_file(path, Direction.UP))], None)
    assert str(failed.value) == "squawk did not finish within 0.5s and was stopped"


def test_lint_names_file_statement_line_and_rule(squawk: None, dsn: str, migrations: MigrationDir) -> None:
    migrations.add("00001_a.sql", A)
    migrations.add(
        "00002_risky.sql",
        "-- +goose Up\n-- adds a column\nALTER TABLE a\n    ADD COLUMN email text NOT NULL;\n\n"
        "CREATE INDEX a_id_idx ON a (id);\n",
    )
    assert run_cli("up-by-one", dsn=dsn, directory=migrations.path).returncode == 0
    result = run_cli("lint", dsn=dsn, directory=migrations.path)
    assert result.returncode == 4
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("00002_risky.sql: statement 1 (line 4): warning adding-required-field") for line in lines
    ), lines
    assert any(
        line.startswith("00002_risky.sql: statement 2 (line 6): warning require-concurrent-index-creation")
        for line in lines
    ), lines
    assert not any(line.startswith("00001_a.sql") for line in lines), "applied files are not linted"
    assert not any("require-lock-timeout" in line for line in lines), ".squawk.toml excludes it"
    assert result.stderr.strip() == f"migrator: error: lint: {len(lines)} finding(s) in 1 of 1 file(s)"

    plan = json.loads(run_cli("plan", "--json", dsn=dsn, directory=migrations.path).stdout)
    rules = {finding["rule"] for finding in plan["pending"][0]["lint"]}
    assert {"adding-required-field", "require-concurrent-index-creation"} <= rules
    # squawk's own words reach the JSON: its message always, its advice where it gives one.
    required = next(f for f in plan["pending"][0]["lint"] if f["rule"] == "adding-required-field")
    assert (required["statement"], required["line"], required["level"]) == (1, 4, "Warning")
    assert isinstance(required["message"], str)
    assert required["message"] not in {"", "None"}
    assert required["help"] not in {"", "None", None}
    assert f"{required['message']} ({required['help']})" in result.stdout

    warnings = lint_warnings(collect(migrations.path)[1:], migrations.path)
    assert any("00002_risky.sql: statement 1 (line 4)" in w and "adding-required-field" in w for w in warnings)
