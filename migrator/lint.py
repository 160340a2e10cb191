"""Migration lint by squawk (the ``squawk-cli`` package): its rules, our file and line numbers.

squawk sees exactly what would run: the Up statements of each file after goose parsing
and ENVSUB, with ``--assume-in-transaction`` unless the file says NO TRANSACTION. Its
findings are mapped back to the migration's statement number and line. Rules are
excluded in the project's ``.squawk.toml``, squawk's own config file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from migrator.errors import InputError
from migrator.parser import ParsedMigration
from migrator.source import Migration

CONFIG_NAME = ".squawk.toml"
# squawk lints a whole project in well under a second; one that has not finished in five
# minutes is stuck, and a stuck lint must not hold a deployment's preview forever.
SQUAWK_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Finding:
    """One of squawk's findings, placed by our file, statement and line."""

    filename: str
    statement: int
    line: int
    rule: str
    level: str
    message: str
    help: str | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        advice = f" ({self.help})" if self.help else ""
        return (
            f"{self.filename}: statement {self.statement} (line {self.line}): "
            f"{self.level.lower()} {self.rule}: {self.message}{advice}"
        )


def squawk_binary() -> str | None:
    """squawk on PATH, or beside this interpreter (a virtualenv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).with_name("squawk")
    return shutil.which("squawk") or (str(beside) if beside.is_file() else None)


def find_config(migrations_dir: Path) -> Path | None:
    for folder in (Path.cwd(), migrations_dir.resolve().parent):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


@dataclass(frozen=True)
class _Placed:
    """A file's statements as written for squawk, and where each starts there."""

    migration: Migration
    parsed: ParsedMigration
    path: Path  # the file squawk reads
    starts: list[int]  # 0-based line in that file where each statement begins


def lint(files: list[tuple[Migration, ParsedMigration]], config: Path | None) -> list[Finding]:
    """squawk's findings on ``files`` with ``config``; InputError when squawk is not installed."""
    binary = squawk_binary()
    if binary is None:
        raise InputError("squawk is not installed: pip install squawk-cli")
    return _lint(binary, files, config)


def lint_if_installed(files: list[tuple[Migration, ParsedMigration]], migrations_dir: Path) -> list[Finding] | None:
    """squawk's findings on ``files`` with the project's config (``find_config``), or None
    where squawk is not installed (the image has none): a report that lints when it can."""
    binary = squawk_binary()
    return None if binary is None else _lint(binary, files, find_config(migrations_dir))


def _lint(binary: str, files: list[tuple[Migration, ParsedMigration]], config: Path | None) -> list[Finding]:
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="migrator-lint-") as scratch:
        for in_transaction in (True, False):
            group = [(m, p) for m, p in files if p.use_tx is in_transaction and p.statements]
            if group:
                folder = Path(scratch) / ("tx" if in_transaction else "no-tx")
                folder.mkdir()
                placed = [_write(folder, m, p) for m, p in group]
                findings += _run(binary, placed, config, in_transaction)
    return sorted(findings, key=lambda f: (f.filename, f.statement, f.rule))


def _write(folder: Path, migration: Migration, parsed: ParsedMigration) -> _Placed:
    starts, offset = [], 0
    for statement in parsed.statements:
        starts.append(offset)
        offset += statement.sql.count("\n") + 2  # the statement, then one blank line
    path = folder / migration.filename
    path.write_text("\n\n".join(s.sql for s in parsed.statements) + "\n")
    return _Placed(migration, parsed, path, starts)


def _run(binary: str, placed: list[_Placed], config: Path | None, in_transaction: bool) -> list[Finding]:
    command = [binary, "--reporter", "json"]
    if config is not None:
        command += ["--config", str(config)]
    command.append("--assume-in-transaction" if in_transaction else "--no-assume-in-transaction")
    command += [str(p.path) for p in placed]
    # Run where no stray .squawk.toml can be picked up: only the one passed in counts.
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=SQUAWK_TIMEOUT_SECONDS,
            cwd=placed[0].path.parent,
        )
    except subprocess.TimeoutExpired:
        raise InputError(f"squawk did not finish within {SQUAWK_TIMEOUT_SECONDS:g}s and was stopped") from None
    # squawk prints a JSON list even when it finds nothing: no output is a failure (a config
    # it cannot read exits 1, as findings do, with nothing on stdout).
    try:
        reported = json.loads(result.stdout)
    except json.JSONDecodeError:
        reported = None
    if result.returncode not in (0, 1) or not isinstance(reported, list):
        reason = " ".join((result.stderr or result.stdout).split())[:500]
        raise InputError(f"squawk failed (exit {result.returncode}): {reason}")
    by_path = {str(p.path): p for p in placed}
    return [_finding(by_path[item["file"]], item) for item in reported]


def _finding(placed: _Placed, item: dict[str, object]) -> Finding:
    line = int(str(item["line"]))
    index = max(i for i, start in enumerate(placed.starts) if start <= line)
    statement = placed.parsed.statements[index]
    return Finding(
        filename=placed.migration.filename,
        statement=index + 1,
        line=statement.line + line - placed.starts[index],
        rule=str(item["rule_name"]),
        level=str(item["level"]),
        message=str(item["message"]),
        help=str(item["help"]) if item.get("help") else None,
    )
