"""The import graph runs one way: ``infra/`` may import ``migrator/``, never the reverse; and
``infra/``, ``bench/`` and the Pulumi program use the migrator only through its public API.

The image carries ``migrator/`` alone: an import of the Pulumi program or of Pulumi itself
there would fail inside the image, or make it carry what it never runs. The API is what
``migrator/__init__.py`` exports: its modules may change behind it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import migrator
from tests.support import REPO

FORBIDDEN = ("infra", "pulumi", "pulumi_gcp", "pulumi_nomad", "pulumi_docker", "bench", "tests", "tools")


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def migrator_imports(path: Path) -> list[str]:
    """Each import of the migrator in ``path`` that is not a public name of ``migrator``, as written."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("migrator.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("migrator."):
                found.append(f"from {node.module} import ...")
            elif node.module == "migrator":
                found += [f"from migrator import {a.name}" for a in node.names if a.name not in migrator.__all__]
    return found


def test_the_migrator_imports_neither_the_program_nor_pulumi() -> None:
    offenders = {
        path.name: sorted(imported_packages(path) & set(FORBIDDEN)) for path in sorted((REPO / "migrator").glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_program_and_the_benchmarks_use_only_the_migrator_s_public_names() -> None:
    users = [REPO / "__main__.py", *sorted((REPO / "infra").glob("*.py")), *sorted((REPO / "bench").glob("*.py"))]
    offenders = {str(path.relative_to(REPO)): migrator_imports(path) for path in users}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_benchmarks_and_the_tools_import_nothing_from_the_tests() -> None:
    """What a benchmark shares with the tests (the throwaway server, the image build) lives in
    ``tools/``: a benchmark run needs no test code, and a test may move without breaking one."""
    users = [*sorted((REPO / "bench").glob("*.py")), *sorted((REPO / "tools").rglob("*.py"))]
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & {"tests"}) for path in users}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_rule_sees_every_way_past_the_api(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(
        "import migrator\nimport migrator.api\nfrom migrator.store import Store\n"
        "from migrator import Migrator, api\nfrom . import migrator\n"
    )
    assert migrator_imports(user) == [
        "import migrator.api",
        "from migrator.store import ...",
        "from migrator import api",
    ]
