"""What a command that never connects imports: no psycopg (about 120 ms of a start on our
CI machines, more than goose's whole no-op run) and no pglast (about 30 ms, for commands that
parse no file). Read from the modules' own import statements, at module level, outside
``if TYPE_CHECKING``: an import inside a function is paid only by the runs that call it.

And no dataclass without a docstring: ``dataclasses`` writes one for such a class from
``inspect.signature``, about a millisecond each at every start (27 of them took 20 ms of
``import migrator.cli.program``'s 57 on a loaded CI machine).

The package's ``__init__`` is left out: it is the library's front door, and what it imports
is its own business (see the import budget in bench/startup.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGE = REPO / "migrator"
# The modules validate, show, create and the messages about the ledger need without a session.
WITHOUT_A_SESSION = (
    "envsub",
    "events",
    "interruptions",
    "ledger_entries",
    "own_transaction",
    "parser",
    "pg_grammar",
    "planning",
    "refusals",
    "source",
    "status",
    "table_name",
    "unrunnable",
)


def module_imports(module: str) -> set[str]:
    """The modules ``module`` imports when it is imported (its module-level import statements)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if isinstance(node, ast.If | ast.Try) else [node]:
            if isinstance(inner, ast.Import):
                found.update(alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                found.add(inner.module)
    return found


def reachable(module: str) -> set[str]:
    """Every module imported, directly or through the package's other modules, on importing ``module``."""
    seen: set[str] = set()
    todo = [f"migrator.{module}"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name.startswith("migrator.") and (PACKAGE / f"{name.removeprefix('migrator.')}.py").is_file():
            todo.extend(module_imports(name.removeprefix("migrator.")))
    return seen


def test_the_walk_sees_psycopg_where_a_module_imports_it() -> None:
    assert "psycopg" in reachable("store")
    assert "psycopg" in reachable("ledger")


@pytest.mark.parametrize("module", WITHOUT_A_SESSION)
def test_a_module_a_command_without_a_session_needs_imports_no_psycopg_or_pglast(module: str) -> None:
    heavy = {name for name in reachable(module) if name.split(".")[0] in {"psycopg", "pglast"}}
    assert heavy == set()


def dataclasses_without_a_docstring(path: Path) -> list[str]:
    """The classes decorated with ``dataclass`` in ``path`` that have no docstring."""
    return [
        f"{path.name}:{node.lineno} {node.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(decorator).startswith("dataclass") for decorator in node.decorator_list)
        and ast.get_docstring(node) is None
    ]


def test_the_docstring_check_finds_a_dataclass_without_one(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass Bare:\n    x: int\n\n"
        '@dataclass\nclass Told:\n    """Said."""\n\n    y: int\n'
    )
    assert dataclasses_without_a_docstring(source) == ["sample.py:4 Bare"]


def test_every_dataclass_of_the_package_has_a_docstring() -> None:
    missing = [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in dataclasses_without_a_docstring(path)]
    assert missing == []
