"""Durations written as goose users write them: ``500ms``, ``2s``, ``90s``, ``15m``, ``1h``."""

from __future__ import annotations

import re

from migrator.errors import DurationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?P<amount>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)", re.ASCII)
# PostgreSQL's timeouts are whole milliseconds in a 32-bit int, and 0 means "no limit":
# a value outside these bounds would silently mean something else there.
MIN_SECONDS = 0.001
MAX_SECONDS = (2**31 - 1) / 1000


def parse_duration(text: str) -> float:
    """Seconds in ``text``; DurationError (a ValueError) naming the text when it is not a duration in bounds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise DurationError(f"invalid duration {text!r}: write it like 500ms, 2s, 90s, 15m or 1h")
    seconds = float(match["amount"]) * _UNITS[match["unit"]]
    if round(seconds * 1000) < MIN_SECONDS * 1000:
        raise DurationError(f"duration {text!r} is under 1ms: PostgreSQL would take it as no limit at all")
    if seconds > MAX_SECONDS:
        raise DurationError(f"duration {text!r} is longer than PostgreSQL's limit of {MAX_SECONDS / 3600:.0f}h")
    return seconds


def milliseconds(seconds: float) -> int:
    """A parsed duration as PostgreSQL's whole milliseconds (never 0: see parse_duration)."""
    return max(1, round(seconds * 1000))


def duration_text(seconds: float) -> str:
    """``seconds`` written as parse_duration reads it, in the largest unit that is exact."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        amount = seconds / size
        if amount >= 1 and amount == int(amount):
            return f"{int(amount)}{unit}"
    return f"{round(seconds * 1000)}ms"
