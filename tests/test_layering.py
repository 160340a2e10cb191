"""The import graph runs one way: ``infra/`` may import ``migrator/``, never the reverse.

The image carries ``migrator/`` alone: an import of the Pulumi program or of Pulumi itself
there would fail inside the image, or make it carry what it never runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

FORBIDDEN = ("infra", "pulumi", "pulumi_gcp", "pulumi_nomad", "pulumi_docker", "bench", "tests")


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_migrator_imports_neither_the_program_nor_pulumi() -> None:
    offenders = {
        path.name: sorted(imported_packages(path) & set(FORBIDDEN)) for path in sorted((REPO / "migrator").glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}
