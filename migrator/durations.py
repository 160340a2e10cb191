"""Durations written as goose users write them: ``500ms``, ``2s``, ``90s``, ``15m``, ``1h``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?P<amount>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError naming the text when it is not a duration."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: write it like 500ms, 2s, 90s, 15m or 1h")
    return float(match["amount"]) * _UNITS[match["unit"]]
