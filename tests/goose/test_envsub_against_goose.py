"""ENVSUB lines expanded by the migrator and by the library goose expands them with.

goose's parser hands every line of an ``-- +goose ENVSUB ON`` section to
``github.com/mfridman/interpolate`` (goose v3.29.0 ``internal/sqlparser/parser.go``);
``goose-provider envsub`` (tests/support/goose_driver) runs exactly that. Generated lines mix every
form of the grammar with nonsense, and both must agree: the same text, or both refuse.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.envsub import SubstitutionError, substitute
from tests.support.goose_interop import tool

ENV = {"SET": "hello-world", "EMPTY": "", "WIDE": "αβγδε", "Set_2": "x"}
NAMES = st.sampled_from([*ENV, "UNSET"])
NUMBERS = st.integers(min_value=-14, max_value=14).map(str) | st.sampled_from(["", " ", " -3", "2 ", "x", "+1"])


def expansion(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        NAMES.map(lambda n: f"${n}"),
        NAMES.map(lambda n: f"${{{n}}}"),
        st.tuples(NAMES, st.sampled_from([":-", "-", "?"]), inner).map(lambda t: f"${{{t[0]}{t[1]}{t[2]}}}"),
        st.tuples(NAMES, NUMBERS).map(lambda t: f"${{{t[0]}:{t[1]}}}"),
        st.tuples(NAMES, NUMBERS, NUMBERS).map(lambda t: f"${{{t[0]}:{t[1]}:{t[2]}}}"),
    )


TEXT = st.text(alphabet="ab '();:-?{}\\$1_é", max_size=6)
PIECES = st.recursive(
    st.one_of(TEXT, st.sampled_from(["$$", "\\$", "$(", "\\\\", "$", "$1", "${", "${}", "${SET", "}"])),
    lambda inner: expansion(st.lists(inner, max_size=3).map("".join)),
    max_leaves=6,
)
LINES = st.lists(st.lists(PIECES, max_size=5).map("".join), min_size=20, max_size=40)


def expand_like_goose(lines: list[str]) -> list[str | None]:
    """Each line as goose expands it, or None where goose refuses it."""
    result = subprocess.run(
        [str(tool("goose-provider")), "envsub"],
        input=json.dumps(lines),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=True,
    )
    return [entry.get("expanded") for entry in json.loads(result.stdout)]


def expand_like_the_migrator(line: str) -> str | None:
    try:
        return substitute(line, ENV)
    except SubstitutionError:
        return None


def agrees_with_goose(line: str, goose: str | None) -> bool:
    """The same text, or both refuse; goose's one known flaw aside: a substring that cuts
    a character, where goose sends invalid UTF-8 (PostgreSQL rejects it) and the migrator
    refuses the file before connecting."""
    ours = expand_like_the_migrator(line)
    if goose is not None and "\ufffd" in goose and ours is None:
        return True
    return ours == goose


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_every_line_expands_as_goose_expands_it(lines: list[str]) -> None:
    goose = expand_like_goose(lines)
    for line, expected in zip(lines, goose, strict=True):
        assert agrees_with_goose(line, expected), f"line {line!r}: goose {expected!r}"


# Every form once, so that the comparison does not hang on what hypothesis happens to draw.
KNOWN_LINES = [
    "plain text, no expansion",
    "$SET and ${SET} and ${UNSET} and $EMPTY.",
    "${SET:-fallback} ${EMPTY:-fallback} ${UNSET:-fallback} ${EMPTY-kept} ${UNSET-fallback}",
    "${SET?needed} ${EMPTY?needed}",
    "${UNSET?needed}",
    "${UNSET?}",
    "${SET:0} ${SET:3} ${SET:11} ${SET:99} ${SET: -3} ${SET: -99}",
    "${SET:1:3} ${SET:2:0} ${SET:2:-2} ${SET:8:-5} ${SET: -5:2} ${SET:0:99}",
    "${SET: 2 : 3 } ${SET:+1}",
    "${SET:x}",
    "${SET:1:y}",
    "${SET:}",
    "${SET:1:}",
    "${SET:1",
    "${SET:1:2",
    "${SET:1X}",
    "${SET:1:2X}",
    "${SET:-${UNSET:-${EMPTY:-deep}}}",
    "$$ \\$ $( \\\\ trailing $",
    "${SET",
    "${SET!}",
    "${}",
    "$1",
    "${1A}",
    "${Set_2}_${Set_2}",
    "${SET:-${UNSET?}} ${SET-${UNSET?}} ${SET?${UNSET?}} ${EMPTY-${UNSET?}} ${SET:-${UNSET:-}x}",
    "${EMPTY:-${UNSET?empty is not enough}}",
    "${UNSET-${UNSET?}}",
    "${UNSET?${UNSET?inner}}",
    "${SET:-${WIDE:1:2}}",
    "${WIDE:0:1}${WIDE:1}",
    "${WIDE:0:3}${UNSET:-${WIDE:3:1}}",
    "${WIDE:0:1}x${WIDE:1}",
]


def test_known_lines_expand_as_goose_does() -> None:
    for line, expected in zip(KNOWN_LINES, expand_like_goose(KNOWN_LINES), strict=True):
        assert agrees_with_goose(line, expected), f"line {line!r}: goose {expected!r}"


def test_substrings_count_bytes_as_goose_does() -> None:
    lines = ["${WIDE: -2}", "${WIDE:2:4}", "${WIDE:4}", "${SET:-1}", "${SET: -3:2}", "${SET:1:-1}"]
    assert [expand_like_the_migrator(line) for line in lines] == expand_like_goose(lines)
    assert expand_like_the_migrator("${WIDE: -2}") == "ε"


def test_a_substring_that_cuts_a_character_is_refused() -> None:
    with pytest.raises(SubstitutionError, match=r"\$\{WIDE:\.\.\.\} cuts a multi-byte character"):
        substitute("SELECT '${WIDE:1:2}';", ENV)
    assert "\ufffd" in str(expand_like_goose(["${WIDE:1:2}"])[0]), "goose cuts the character"


def test_substrings_that_cut_a_character_in_two_join_again() -> None:
    """goose joins the bytes: the halves of a character meet again, a lone half does not."""
    lines = ["${WIDE:0:1}${WIDE:1}", "${WIDE:0:3}${UNSET:-${WIDE:3:1}}", "${WIDE:0:1}x${WIDE:1}"]
    assert [expand_like_the_migrator(line) for line in lines] == ["αβγδε", "αβ", None]
    assert expand_like_goose(lines)[:2] == ["αβγδε", "αβ"]
    with pytest.raises(SubstitutionError) as refused:
        substitute(lines[2], ENV)
    assert str(refused.value) == (
        "${WIDE:...} cuts a multi-byte character: goose counts bytes, and would send invalid UTF-8"
    )


def test_a_variable_that_is_not_utf8_is_refused() -> None:
    """Python hands an environment variable's bytes that are not UTF-8 over as surrogate
    escapes; goose would send them to PostgreSQL as they are, which refuses them."""
    not_utf8 = {**ENV, "LATIN1": b"caf\xe9".decode("utf-8", "surrogateescape")}
    for line in ["$LATIN1", "${LATIN1:0:3}${LATIN1:3}", "${SET:-${WIDE:0:1}}$LATIN1"]:
        with pytest.raises(SubstitutionError) as refused:
            substitute(line, not_utf8)
        assert str(refused.value) == (
            "a variable's value is not UTF-8: goose would send it as it is, and PostgreSQL refuse it"
        )
    assert substitute("${LATIN1:0:3}", not_utf8) == "caf"


@pytest.mark.parametrize(
    ("line", "expanded"),
    [
        ("${SET:-${UNSET?}}", "hello-world"),
        ("${SET-${UNSET?}}", "hello-world"),
        ("${SET?${UNSET?}}", "hello-world"),
        ("${EMPTY-${UNSET?}}", ""),
        ("${SET:-${WIDE:1:2}}", "hello-world"),
        ("${UNSET:-${UNSET:-a}b}", "ab"),
        ("${UNSET-${UNSET-a}b}", "ab"),
        ("${UNSET:-aXb} ${UNSET-aXb}", "aXb aXb"),
        ("SELECT 'XYZ}', MAX(1) FROM x; -- ${SET}X", "SELECT 'XYZ}', MAX(1) FROM x; -- hello-worldX"),
    ],
)
def test_text_and_defaults_expand_only_where_used(line: str, expanded: str) -> None:
    assert substitute(line, ENV) == expanded


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("${EMPTY:-${UNSET?empty is not enough}}", "$UNSET: empty is not enough"),
        ("${UNSET-${UNSET?}}", "$UNSET: not set"),
        ("${UNSET?${UNSET?inner}}", "$UNSET: inner"),
        ("${UNSET?needs X}", "$UNSET: needs X"),
    ],
)
def test_a_used_default_or_message_is_evaluated(line: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as refused:
        substitute(line, ENV)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("${SET:x}", "unable to parse substring offset 'x'"),
        ("${SET:1X}", "unable to parse substring offset '1X'"),
        ("${SET:1:y}", "unable to parse substring length 'y'"),
        ("${SET:1:2X}", "unable to parse substring length '2X'"),
        ("${SET!}", "expected an operator after ${SET, got '!'"),
        ("${SET", "expected an operator after ${SET, got 'end of line'"),
        ("${SET:-x", "expected '}' to close ${SET, got 'end of line'"),
        ("${1A}", "expected a variable name to start with a letter, got '1'"),
        ("${", "expected a variable name to start with a letter, got 'end of line'"),
        ("${UNSET?the region}", "$UNSET: the region"),
        ("${UNSET?}", "$UNSET: not set"),
    ],
)
def test_a_refusal_names_the_part_that_is_wrong(line: str, message: str) -> None:
    """goose's own messages say less ("Expected an operator, got \ufffd" at the end of a line)."""
    with pytest.raises(SubstitutionError) as refused:
        substitute(line, ENV)
    assert str(refused.value) == message
