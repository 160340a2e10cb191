"""The score tool's arithmetic and its choice of what to try again (tools/mutation/mutation_score.py)."""

from __future__ import annotations

import pytest

from tools.mutation.mutation_score import RUNNER_CRASHED, Tally, read_equivalent, retry_rule

KILLED, SURVIVED = 1, 0


@pytest.mark.parametrize(
    ("caught", "judged", "low", "high"),
    [
        # Wilson's interval at 95%, as published tables give it
        (0, 10, 0.0, 27.75),
        (10, 10, 72.25, 100.0),
        (5, 10, 23.66, 76.34),
        (95, 100, 88.82, 97.85),
    ],
)
def test_the_interval_is_wilsons(caught: int, judged: int, low: float, high: float) -> None:
    seen_low, seen_high = Tally(caught=caught, survivors=["x"] * (judged - caught)).interval()
    assert seen_low == pytest.approx(low, abs=0.01)
    assert seen_high == pytest.approx(high, abs=0.01)


def test_a_sample_is_the_mutants_numbered_3_or_7_of_the_module() -> None:
    retry = retry_rule("sample", "migrator.dsn")
    picked = [n for n in range(1, 41) if retry(f"migrator.dsn.x_parse__mutmut_{n}", KILLED)]
    assert picked == [3, 7, 13, 17, 23, 27, 33, 37]
    assert not retry("migrator.store.x_open__mutmut_3", KILLED)


def test_a_sample_forgets_listed_equivalent_mutants_too() -> None:
    """mutmut tries every mutant a pattern names: a verdict left from before would count."""
    [listed, *_] = [name for name in read_equivalent() if name.endswith(("3", "7"))]
    assert retry_rule("sample", "")(listed, SURVIVED)


def test_survivors_and_crashed_runs_are_tried_again_but_not_listed_equivalent_ones() -> None:
    [listed, *_] = read_equivalent()
    retry = retry_rule("survivors", "migrator")
    assert retry("migrator.dsn.x_parse__mutmut_1", SURVIVED)
    assert retry("migrator.dsn.x_parse__mutmut_1", RUNNER_CRASHED)
    assert not retry("migrator.dsn.x_parse__mutmut_1", KILLED)
    assert not retry("infra.config.x_read__mutmut_1", SURVIVED)
    assert not retry(listed, SURVIVED)
    assert retry_rule("all", "")("migrator.dsn.x_parse__mutmut_1", KILLED)
    assert not retry_rule("all", "")(listed, SURVIVED)
