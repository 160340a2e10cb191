"""The user's guide holds together: every relative link in README.md and docs/*.md reaches a file
(and a heading, when it names one), and the README's test command is the one CI runs."""

import re
from pathlib import Path

import pytest

from tests.support import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

LINK = re.compile(r"\[(?:[^\]]|\n)*?\]\(([^)\s]+)\)")
FENCE = re.compile(r"^ *```.*?^ *```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The page without its code blocks and code spans, where brackets are code, not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page.read_text())) if not re.match(r"[a-z]+:", target)]


def broken(page: Path, target: str) -> str | None:
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.exists():
        return f"{destination.relative_to(REPO) if destination.is_relative_to(REPO) else destination} does not exist"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{destination.name} has no heading #{anchor}"
    return None


def test_the_pages_are_the_readme_and_the_docs_folder() -> None:
    names = {page.relative_to(REPO).as_posix() for page in PAGES}
    assert "README.md" in names
    assert {"docs/runbook.md", "docs/migrator.md", "docs/benchmarks.md", "docs/testing.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    problems = [f"{target}: {problem}" for target in relative_links(page) if (problem := broken(page, target))]
    assert problems == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / target.partition("#")[0]).resolve() for target in relative_links(REPO / "README.md")}
    assert [page.name for page in PAGES[1:] if page.resolve() not in linked] == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# The page\n\n## Rolling back, `pulumi up` and staging's image\n\n```sh\n# not a heading\n```\n")
    assert anchors(page) == {"the-page", "rolling-back-pulumi-up-and-stagings-image"}
    assert broken(page, "#rolling-back-pulumi-up-and-stagings-image") is None
    assert broken(page, "#not-a-heading") == "page.md has no heading #not-a-heading"
    assert broken(page, "gone.md") == f"{tmp_path / 'gone.md'} does not exist"
    page.write_text("[a](one.md) `[b](two.md)` [c](https://example.com/x)\n```\n[d](three.md)\n```\n[e](\nfour.md)")
    assert relative_links(page) == ["one.md"]


def test_the_readme_shows_the_test_command_ci_runs() -> None:
    """.ci/run ends by running the README's test command: the README shows that very line."""
    ci_commands = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    test_command = [line for line in ci_commands if re.fullmatch(r"bash \.ci/test\b.*", line)]
    assert test_command == ["bash .ci/test"]
    shell_blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), re.DOTALL | re.MULTILINE)
    shown = [line.split("#")[0].strip() for block in shell_blocks for line in block.splitlines()]
    assert test_command[0] in shown
