"""The command line's boundaries: the library reads no environment variable (the command line
passes what it reads), the library's errors carry no exit code (the command line maps each
class), and ``--version`` and ``--help`` import neither psycopg nor pglast (the parser is built without them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from migrator import errors, refusals
from migrator.cli.exit_codes import exit_code
from migrator.cli.flags import UsageError
from tests.support import REPO

LIBRARY = REPO / "migrator"


def environment_reads(path: Path, root: Path = REPO) -> list[str]:
    """Each ``os.environ``, ``environ``, ``getenv`` or ``putenv`` the module names, by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            name = next((a.name for a in node.names if a.name in ("environ", "getenv", "environb")), None)
        if name in ("environ", "environb", "getenv", "getenvb", "putenv"):
            found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {name}")
    return found


def test_the_library_reads_no_environment_variable() -> None:
    modules = [p for p in sorted(LIBRARY.rglob("*.py")) if "cli" not in p.relative_to(LIBRARY).parts[:-1]]
    assert len(modules) > 20
    assert [read for path in modules for read in environment_reads(path)] == []


def test_the_environment_check_finds_each_way_of_reading_it(tmp_path: Path) -> None:
    module = tmp_path / "reads.py"
    module.write_text("import os\nfrom os import getenv\na = os.environ['A']\nb = getenv('B')\n")
    assert environment_reads(module, tmp_path) == ["reads.py:2: getenv", "reads.py:3: environ", "reads.py:4: getenv"]


def test_the_library_errors_carry_no_exit_code() -> None:
    classes = [c for m in (errors, refusals) for c in vars(m).values() if isinstance(c, type)]
    assert errors.MigratorError in classes
    assert [c.__name__ for c in classes if issubclass(c, Exception) and hasattr(c, "exit_code")] == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.MigratorError("x"), 1),
        (errors.DatabaseError("x"), 1),
        (errors.MigrationFailed("x"), 1),
        (errors.RehearsalFailed("x"), 1),
        (errors.InputError("x"), 2),
        (errors.ParseError("x"), 2),
        (refusals.OutOfOrderRefused([], 3), 2),
        (UsageError("x"), 2),
        (errors.LockTimeout("x"), 3),
        (errors.LintFindings("x"), 4),
        (errors.DriftFound("x"), 5),
        (errors.Interrupted("x"), 130),
        (ValueError("x"), 1),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_error_class_has_its_exit_code(error: Exception, code: int) -> None:
    assert exit_code(error) == code


@pytest.mark.parametrize(
    "argv", [["--version"], ["--version", "up"], ["--help"], ["up", "--help"], ["rehearse", "--help"]]
)
def test_version_and_help_import_neither_psycopg_nor_pglast(argv: list[str]) -> None:
    # What `python -m migrator` loads, the public API's package included.
    program = (
        "import runpy, sys\n"
        "try:\n    runpy.run_module('migrator', run_name='__main__', alter_sys=True)\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    ran = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = ran.stderr.split()
    assert "migrator.cli.program" in loaded
    assert [name for name in loaded if name.split(".")[0] in ("psycopg", "pglast", "psycopg_binary")] == []
    assert [name for name in loaded if name.startswith("migrator.cli.commands")] == []
