"""Durations at PostgreSQL's bounds: whole milliseconds from 1 to 2^31 - 1 (migrator/durations.py)."""

from __future__ import annotations

import pytest

from migrator.durations import milliseconds, parse_duration


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1ms", 1),
        ("0.6ms", 1),
        ("1.4ms", 1),
        ("2s", 2000),
        (" 15m ", 900_000),
        ("1.5h", 5_400_000),
        ("2147483647ms", 2**31 - 1),
    ],
)
def test_a_duration_in_bounds_is_its_milliseconds(text: str, ms: int) -> None:
    assert milliseconds(parse_duration(text)) == ms


@pytest.mark.parametrize("text", ["0ms", "0.4ms", "0.5ms", "0.0001s"])
def test_a_duration_postgresql_would_round_to_no_limit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="under 1ms") as refused:
        parse_duration(text)
    assert str(refused.value) == f"duration {text!r} is under 1ms: PostgreSQL would take it as no limit at all"


@pytest.mark.parametrize("text", ["2147483648ms", "597h"])
def test_a_duration_past_postgresql_s_32_bit_milliseconds_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="longer than") as refused:
        parse_duration(text)
    assert str(refused.value) == f"duration {text!r} is longer than PostgreSQL's limit of 597h"


@pytest.mark.parametrize("text", ["", "5", "ms", "-1s", "1e3ms", "1 s", "1sec", "1٢s"])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as refused:
        parse_duration(text)
    assert str(refused.value) == f"invalid duration {text!r}: write it like 500ms, 2s, 90s, 15m or 1h"
